"""One interface for every compression method: a frozen config dataclass per method, a registry of
handlers keyed by config type, and `compress(model, configs, ctx)` applying them in order.

Methods that change the architecture (fewer heads, factorised Linears, shared layers, a trimmed
vocabulary...) record each change with `record_structure(model, op, **params)`; the artifact stores
these records and replays them on a freshly built encoder before filling in the weights, through
the rebuild functions registered with `@structure_op(op)`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from occamtune.errors import ConfigError
from occamtune.models import TaskModel, count_parameters

Handler = Callable[[TaskModel, Any, "CompressContext"], TaskModel]
Rebuild = Callable[[TaskModel, dict[str, Any]], None]

HANDLERS: dict[type, Handler] = {}
METHODS: dict[str, type[CompressionConfig]] = {}
STRUCTURE_OPS: dict[str, Rebuild] = {}


@dataclass(frozen=True)
class CompressionConfig:
    """Base of the method configs. Subclasses set `name` (the method's name in pipelines)."""

    name: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """`{"method": name, **fields}` (tuples as lists), the YAML form of one pipeline step."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"method": self.name, **values}


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
    """Decorator: `fn(model, config, ctx) -> model` handles configs of type `config_cls`."""
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


def record_structure(model: TaskModel, op: str, **params: Any) -> None:
    """Remember an architectural change (already made by the handler) for the artifact.

    `params` must be JSON values from which the `@structure_op(op)` rebuild function redoes the
    same shapes on a fresh model.
    """
    if op not in STRUCTURE_OPS:
        raise KeyError(f"no @structure_op({op!r}) rebuild function")
    model.occam_structure = [*getattr(model, "occam_structure", []), {"op": op, **params}]


def replay_structure(model: TaskModel, records: list[dict[str, Any]]) -> None:
    """Redo recorded architectural changes on a freshly built model (artifact loading)."""
    for rec in records:
        params = {k: v for k, v in rec.items() if k != "op"}
        if rec["op"] not in STRUCTURE_OPS:
            raise ConfigError(f"unknown structural change {rec['op']!r} in artifact; "
                              f"known: {sorted(STRUCTURE_OPS)}")
        STRUCTURE_OPS[rec["op"]](model, params)
        record_structure(model, rec["op"], **params)


def compress(model: TaskModel, configs: list[CompressionConfig],
             ctx: CompressContext | None = None) -> TaskModel:
    """Apply compression methods in order; returns the compressed model.

    `model` may be modified in place (pass a copy to keep the original). Each step is logged in
    `model.compression_log` (config, parameters before/after, trainable parameters, seconds).

    Raises:
        ConfigError: a config of an unregistered type, or a method missing what it needs.
    """
    ctx = ctx or CompressContext()
    if ctx.teacher is None and len(configs) > 1:  # later steps may learn from the original
        ctx = dataclasses.replace(ctx, teacher=copy.deepcopy(model).eval())
    log = list(getattr(model, "compression_log", []))
    for config in configs:
        handler = HANDLERS.get(type(config))
        if handler is None:
            raise ConfigError(f"no compression method for {type(config).__name__}; "
                              f"registered: {sorted(METHODS)}")
        before = count_parameters(model)
        torch.manual_seed(ctx.seed)
        start = time.perf_counter()
        model = handler(model, config, ctx)
        entry = {"config": config.to_dict(), "params_before": before,
                 "params_after": count_parameters(model),
                 "trainable": getattr(model, "_occam_trainable", count_parameters(model, True)),
                 "seconds": round(time.perf_counter() - start, 3),
                 **getattr(model, "_occam_step_info", {})}
        for attr in ("_occam_trainable", "_occam_step_info"):
            if hasattr(model, attr):
                delattr(model, attr)
        log.append(entry)
        model.compression_log = log
    return model


def step_info(model: TaskModel, trainable: int | None = None, **info: Any) -> None:
    """Let a handler report extra facts (and the trainable count while it trained) to the log."""
    if trainable is not None:
        model._occam_trainable = trainable
    model._occam_step_info = {**getattr(model, "_occam_step_info", {}), **info}


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
