"""One interface for every compression method: a frozen config dataclass per method, a registry of
handlers keyed by config type, and `compress(model, configs, ctx)` applying them in order.

A handler returns the model and a `StepRecord` of what it did (see `record.py`). Methods that
change the architecture (fewer heads, factorised Linears, shared layers, a trimmed vocabulary...)
note each change in it (`step.changed(op, **params)`); the artifact stores these changes and
replays them on a freshly built encoder before filling in the weights, through the rebuild
functions registered with `@structure_op(op)`.

A config class also declares what the shrink search needs to know of its method: whether it
trains, its search dimensions (`SearchDim`), its place in the pipelines the search builds, how a
point of the search space becomes its config, and how far a point compresses (`level`). The
search assembles its space from these declarations only.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from occamtune.compress.record import LogEntry, StepRecord, record_of, set_record
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, count_parameters

Handler = Callable[[TaskModel, Any, "CompressContext"], tuple[TaskModel, StepRecord]]
Rebuild = Callable[[TaskModel, dict[str, Any]], None]
Point = Mapping[str, Any]  # a point of the search space: dimension name -> value

HANDLERS: dict[type, Handler] = {}
METHODS: dict[str, type[CompressionConfig]] = {}
STRUCTURE_OPS: dict[str, Rebuild] = {}


_ABSENT: Any = object()  # SearchDim.otherwise: the dimension is left out of the point


@dataclass(frozen=True)
class SearchDim:
    """One dimension of the shrink search's space, declared by the method it belongs to.

    Attributes:
        name: the field of `SearchSpace`, of `occamtune shrink --space NAME=v1,v2`, and the
            parameter name of Optuna's trials.
        default: a tuple of allowed values (the search picks one: a sampled dimension), or one
            fixed setting of the method's steps.
        ok: whether one value is allowed (None: any).
        rule: what `ok` requires, for the error message of a fixed setting ("one of a, b").
        when: for a sampled dimension, whether it is sampled at a point (given the dimensions
            before it); when not, `otherwise` is recorded (or the dimension is left out).
        otherwise: the value recorded when `when` says no (default: left out of the point).
        retry: not sampled: every candidate gets the first value, the later ones only a trial
            the search queues to retry a candidate (see `search/schedule.py`).
        for_teacher: `(values, teacher layers) -> values` the teacher can give (None: all).
        doc: what the dimension means.
    """

    name: str
    default: Any
    ok: Callable[[Any], bool] | None = None
    rule: str = ""
    when: Callable[[Point], bool] | None = None
    otherwise: Any = _ABSENT
    retry: bool = False
    for_teacher: Callable[[tuple, int], tuple] | None = None
    doc: str = ""

    @property
    def sampled(self) -> bool:
        return isinstance(self.default, tuple)

    def at(self, point: Point) -> bool:
        """Whether this dimension is sampled at `point` (given the dimensions before it)."""
        return self.when is None or bool(self.when(point))

    def skipped(self) -> dict[str, Any]:
        """What a point records of this dimension where it is not sampled."""
        return {} if self.otherwise is _ABSENT else {self.name: self.otherwise}


@dataclass(frozen=True)
class CompressionConfig:
    """Base of the method configs. Subclasses set `name` (the method's name in pipelines) and,
    to take part in the shrink search, the class attributes and class methods below."""

    name: ClassVar[str] = ""
    # The method trains the model it hands on (minutes to hours): the search caches the model
    # after such a step and plans its schedule around it. A step told `epochs=0` is still cached
    # (structured pruning then measures and refits every layer) but does not train.
    trains: ClassVar[bool] = False
    search_order: ClassVar[int] = 0  # place in the pipelines the search builds (lower: earlier)
    search_dims: ClassVar[tuple[SearchDim, ...]] = ()
    # Where `level` comes in the search's "most compressed first" order (lower: compared
    # first); None: the method's steps are not compared.
    level_rank: ClassVar[int | None] = None

    def to_dict(self) -> dict[str, Any]:
        """`{"method": name, **fields}` (tuples as lists), the YAML form of one pipeline step."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"method": self.name, **values}

    def training(self) -> bool:
        """Whether this step trains (what the search's schedule plans around)."""
        return self.trains and getattr(self, "epochs", None) != 0

    @classmethod
    def from_point(cls, point: Point, space: Any) -> CompressionConfig | None:
        """This method's step at a point of the search space (`space` gives the fixed settings
        as attributes), or None to skip the step."""
        return None

    @classmethod
    def refuses(cls, model: Any) -> str | None:
        """Why this method cannot run on `model` (None: it can); the shrink search then leaves
        its steps out of the space rather than fail one trial after another on them."""
        return None

    @classmethod
    def level(cls, point: Point) -> float:
        """How far this method compresses at `point` (higher: further), for `level_rank`."""
        return 0.0


def search_methods() -> list[type[CompressionConfig]]:
    """The registered methods that declare search dimensions, in pipeline order."""
    return sorted((c for c in METHODS.values() if c.search_dims), key=lambda c: c.search_order)


@dataclass
class CompressContext:
    """What the caller gives the methods: training, calibration data and corpus statistics.

    Attributes:
        finetune: `finetune(model, *, loss_fn=None, step_hook=None, epochs=None, lr=None)
            -> TaskModel` trains `model` on the run's training data with the run's settings
            (`epochs`, `lr`: other than the run's) and returns the best model.
            `loss_fn(model, batch)` replaces the task loss; `step_hook(step, total)` runs after
            every optimizer step.
        calibration: yields a few input batches (input_ids, attention_mask, token_type_ids,
            shape_ids, labels, first).
        refit_batches: yields more such batches (None: `calibration`'s), for least-squares refits
            that fit a whole weight row per output (structured pruning's refit gains from more
            batches: docs/benchmarks/structured-refit.md); GPTQ's Hessians gained nothing from
            more (checked by hand, not a benchmark).
        token_counts: token-id counts over the training corpus.
        seed: seed set before each method runs.
        tokenizer: optional; gives the special-token ids to vocabulary trimming (without it,
            the BERT conventions are assumed, see `vocab.py`).
        lr: the run's learning rate, for methods that set theirs relative to it.
        teacher: the uncompressed model the pipeline started from (`compress` sets it to a
            frozen copy of its input when not given); quantization-aware training learns from
            its soft labels, so that it recovers the losses of every earlier step too.
        max_length: the longest input the run feeds the model (its `data.max_length`, special
            tokens included; longer texts are windowed): `vocab(positions=true)` keeps only
            that many position embeddings.
    """

    finetune: Callable[..., TaskModel] | None = None
    calibration: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    refit_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    token_counts: Callable[[], dict[int, int]] | None = None
    seed: int = 13
    tokenizer: Any = None
    lr: float | None = None
    teacher: TaskModel | None = None
    max_length: int | None = None


def register(config_cls: type[CompressionConfig]) -> Callable[[Handler], Handler]:
    """Decorator: `fn(model, config, ctx) -> (model, StepRecord)` handles configs of type
    `config_cls`."""
    if not config_cls.name:
        raise TypeError(f"{config_cls.__name__} needs a class attribute `name`")

    def wrap(fn: Handler) -> Handler:
        HANDLERS[config_cls] = fn
        METHODS[config_cls.name] = config_cls
        return fn

    return wrap


def structure_op(op: str) -> Callable[[Rebuild], Rebuild]:
    """Decorator: `fn(model, params)` redoes the architectural change `op` (weights come later)."""

    def wrap(fn: Rebuild) -> Rebuild:
        STRUCTURE_OPS[op] = fn
        return fn

    return wrap


def replay_structure(model: TaskModel, records: list[dict[str, Any]]) -> None:
    """Redo recorded architectural changes on a freshly built model (artifact loading)."""
    for rec in records:
        if rec["op"] not in STRUCTURE_OPS:
            raise ConfigError(f"unknown structural change {rec['op']!r} in artifact; "
                              f"known: {sorted(STRUCTURE_OPS)}")
        STRUCTURE_OPS[rec["op"]](model, {k: v for k, v in rec.items() if k != "op"})


def compress(model: TaskModel, configs: list[CompressionConfig],
             ctx: CompressContext | None = None) -> TaskModel:
    """Apply compression methods in order; returns the compressed model.

    `model` may be modified in place (pass a copy to keep the original). The model returned
    carries its `CompressionRecord` (`record_of(model)`): the input model's record followed by
    each step's (config, parameters before/after, trainable parameters, seconds, facts,
    structural changes, codes, runtime choice).

    Raises:
        ConfigError: a config of an unregistered type, or a method missing what it needs.
    """
    ctx = ctx or CompressContext()
    if ctx.teacher is None and len(configs) > 1:  # later steps may learn from the original
        ctx = dataclasses.replace(ctx, teacher=copy.deepcopy(model).eval())
    record = record_of(model)
    for config in configs:
        handler = HANDLERS.get(type(config))
        if handler is None:
            raise ConfigError(f"no compression method for {type(config).__name__}; "
                              f"registered: {sorted(METHODS)}")
        before = count_parameters(model)
        torch.manual_seed(ctx.seed)
        start = time.perf_counter()
        model, step = handler(model, config, ctx)
        for change in step.structure:  # each must be replayable when the artifact loads
            if change["op"] not in STRUCTURE_OPS:
                raise KeyError(f"no @structure_op({change['op']!r}) rebuild function")
        trainable = step.trainable if step.trainable is not None else count_parameters(model, True)
        entry = LogEntry(config.to_dict(), before, count_parameters(model), trainable,
                         round(time.perf_counter() - start, 3), dict(step.facts))
        record = record.add(entry, step)
        set_record(model, record)
    return model


def need_finetune(ctx: CompressContext, method: str) -> Callable[..., TaskModel]:
    """`ctx.finetune`, or a ConfigError saying that `method` trains."""
    if ctx.finetune is None:
        raise ConfigError(f"compression method {method!r} trains the model: give a "
                          "CompressContext with `finetune` (e.g. `occamtune compress` on a run)")
    return ctx.finetune


def check_range(config: Any, name: str, lo: float, hi: float, lo_open: bool = False,
                hi_open: bool = False) -> None:
    """ConfigError naming the method, field, range and value when a field is out of range."""
    value = getattr(config, name)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{config.name}: {name} must be in {rng}, got {value!r}")


def check_epochs(config: Any) -> None:
    """`epochs` is None (the run's own) or a positive number."""
    epochs = getattr(config, "epochs", None)
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, (int, float))
                               or epochs <= 0):
        raise ConfigError(f"{config.name}: epochs must be a positive number or None, got {epochs!r}")


def config_fields(config_cls: type[CompressionConfig]) -> list[str]:
    return [f.name for f in fields(config_cls)]
