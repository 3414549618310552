"""The search space: which compression pipelines the search may try.

The space is assembled from what the registered compression methods declare (see
`CompressionConfig` in `compress/base.py`): each method's search dimensions (`SearchDim`), its
place in the pipeline, and how a point of the space becomes its step or skips it. With the
shipped methods a pipeline is built in this order, each step optional:
distill -> structured prune -> unstructured prune -> low-rank -> vocabulary trim -> embedding
codebook -> quantize.
Every sampled field is a tuple of allowed values; restrict a field to one value to fix that step.
A method added to the registry with its own dimensions appears here with no edit to this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from occamtune.compress import SearchDim, search_methods  # the package registers every method
from occamtune.config import yaml_number
from occamtune.errors import ConfigError

RETRY_ATTR = "retry_of"  # user attribute of a trial the search queued to retry another with QAT


def search_dims() -> dict[str, SearchDim]:
    """Every dimension the registered methods declare, by name, in pipeline order."""
    dims: dict[str, SearchDim] = {}
    for method in search_methods():
        for dim in method.search_dims:
            if dim.name in dims:
                raise ConfigError(f"search dimension {dim.name!r} of {method.name!r} is declared "
                                  f"twice")
            dims[dim.name] = dim
    return dims


def _sampled() -> list[SearchDim]:
    return [d for d in search_dims().values() if d.sampled]


class SearchSpace:
    """Allowed settings of each pipeline step (0 / 0.0 / False means: skip the step).

    Fields are the dimensions the registered methods declare (`search_dims()`; each `SearchDim`
    says what it means): a tuple of allowed values for a sampled dimension, one value for a
    fixed setting. Build with keywords, e.g. `SearchSpace(bits=(4, 3), distill_layers=(0,))`;
    unset fields take their method's default. Frozen; `to_dict()` gives every field.

    Raises:
        ConfigError: an unknown field, a sampled field without values, or a value out of range.
    """

    def __init__(self, **values: Any) -> None:
        dims = search_dims()
        unknown = sorted(set(values) - set(dims))
        if unknown:
            raise ConfigError(f"unknown search space fields {unknown}; fields: {', '.join(dims)}")
        for name, dim in dims.items():
            object.__setattr__(self, name, _field_value(dim, values.get(name, dim.default)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SearchSpace is frozen: cannot set {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, in pipeline order."""
        return dict(vars(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def for_teacher(self, num_layers: int, refused: tuple[str, ...] = ()) -> SearchSpace:
        """This space with the values the teacher can give (e.g. student depths below its
        number of layers); the methods named in `refused` (`refused_methods`) switched off:
        each of their sampled dimensions keeps its first value, which skips the step."""
        values = self.to_dict()
        for dim in search_dims().values():
            if dim.for_teacher is not None:
                values[dim.name] = dim.for_teacher(values[dim.name], num_layers)
        for method in search_methods():
            if method.name not in refused:
                continue
            dims = [d for d in method.search_dims if d.sampled]
            if dims and dims[0].default[0]:  # its switch's first value must be "off"
                raise ConfigError(f"the search cannot leave {method.name!r} out: its first "
                                  f"value of {dims[0].name!r} does not skip it")
            for dim in dims:
                values[dim.name] = dim.default[:1]
        return SearchSpace(**values)

    def size(self) -> int:
        """Number of distinct pipelines the sampler proposes (retries not counted)."""
        return sum(1 for _ in points(self))


def refused_methods(model: Any) -> dict[str, str]:
    """The search's methods that cannot run on `model`, each with its reason."""
    reasons = {method.name: method.refuses(model) for method in search_methods()}
    return {name: why for name, why in reasons.items() if why}


def _field_value(dim: SearchDim, value: Any) -> Any:
    """`value` as the field of `dim` holds it (lists as tuples, one number as a one-value tuple
    of a sampled field), checked."""
    if isinstance(value, list):  # from YAML / JSON
        value = tuple(value)
    if dim.sampled and not isinstance(value, tuple):  # one value, e.g. quant_epochs=1
        number = isinstance(value, int) and not isinstance(value, bool)
        value = (float(value) if number and isinstance(dim.default[0], float) else value,)
    if dim.sampled:
        if not value:
            raise ConfigError(f"search space field {dim.name!r} needs at least one value")
        bad = [v for v in value if dim.ok is not None and not dim.ok(v)]
        if bad:
            raise ConfigError(f"search space field {dim.name!r} has values out of range: {bad}")
    elif dim.ok is not None and not dim.ok(value):
        raise ConfigError(f"search space {dim.name} must be {dim.rule}, got {value!r}")
    return value


def points(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """Every point the sampler can propose, as `suggest_params` gives it, in product order
    (the last dimension varying fastest)."""
    dims = _sampled()

    def extend(i: int, point: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if i == len(dims):
            yield point
            return
        dim, values = dims[i], getattr(space, dims[i].name)
        if not dim.at(point):
            yield from extend(i + 1, {**point, **dim.skipped()})
        elif dim.retry:  # every candidate gets the first value
            yield from extend(i + 1, {**point, dim.name: values[0]} if len(values) > 1 else point)
        else:
            for value in values:
                yield from extend(i + 1, {**point, dim.name: value})

    yield from extend(0, {})


def suggest_params(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Ask an Optuna trial for one point of the space (parameter name -> value)."""
    params: dict[str, Any] = {}
    for dim in _sampled():
        values = getattr(space, dim.name)
        if not dim.at(params):
            params.update(dim.skipped())
        elif not dim.retry:
            params[dim.name] = trial.suggest_categorical(dim.name, values)
        elif len(values) > 1:
            # a retry dimension (QAT) keeps a pipeline's bytes and costs training, so it is not
            # sampled: the search asks for it (a trial enqueued with RETRY_ATTR) when a
            # candidate misses narrowly
            retry = RETRY_ATTR in (getattr(trial, "user_attrs", None) or {})
            params[dim.name] = trial.suggest_categorical(dim.name, values) if retry else values[0]
    return params


def build_pipeline(params: dict[str, Any], space: SearchSpace) -> list[Any]:
    """The list of compression configs for a point of the space, in pipeline order."""
    steps = (method.from_point(params, space) for method in search_methods())
    return [step for step in steps if step is not None]


def suggest(trial: Any, space: SearchSpace) -> list[Any]:
    """One pipeline for an Optuna trial: `build_pipeline(suggest_params(trial, space), space)`."""
    return build_pipeline(suggest_params(trial, space), space)


def parse_space(overrides: list[str] | None) -> SearchSpace:
    """A space from `field=v1,v2,...` strings, e.g. ["bits=4,3", "distill_layers=0"]."""
    import yaml

    kwargs: dict[str, Any] = {}
    dims = search_dims()
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or key.strip() not in dims:
            raise ConfigError(f"search space override {item!r} must be FIELD=v1,v2 with FIELD one "
                              f"of {', '.join(sorted(dims))}")
        key = key.strip()
        values = [yaml_number(yaml.safe_load(v)) for v in raw.split(",")]
        if not dims[key].sampled and len(values) > 1:
            raise ConfigError(f"search space override {item!r}: {key} is one setting of every "
                              f"candidate, not a choice the search samples: give one value "
                              f"(run one search per value to compare them)")
        kwargs[key] = tuple(values) if dims[key].sampled else values[0]
    return SearchSpace(**kwargs)
