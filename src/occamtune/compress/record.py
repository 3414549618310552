"""What compression did to a model, in one typed place.

Each step's handler returns a `StepRecord` (the architectural changes it made, the k-bit codes
it chose, the runtime it asks for, facts for the log); `compress` folds them into the model's
`CompressionRecord`, the one place the artifact writer reads and the artifact loader restores,
so that a saved and reloaded model compresses further and saves to the same bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from occamtune.compress.grid import QuantCodes

RECORD_ATTR = "compression_record"  # the one attribute `compress` sets on a model


@dataclass
class StepRecord:
    """What one compression step did, as its handler returns it.

    Attributes:
        structure: architectural changes made, in order, each `{"op": op, **params}` with JSON
            params from which the `@structure_op(op)` rebuild function redoes the same shapes on
            a fresh model (weights come later).
        codes: tensor name (as in the state dict) -> its k-bit codes; the artifact stores such
            a tensor as its codes while it still equals them.
        int8_runtime: whether inference should use int8 dynamic kernels (None: unchanged).
        trainable: parameters trained while the step ran (None: the model's trainable ones).
        facts: what the step reports to the log (JSON values).
    """

    structure: list[dict[str, Any]] = field(default_factory=list)
    codes: dict[str, QuantCodes] = field(default_factory=dict)
    int8_runtime: bool | None = None
    trainable: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def changed(self, op: str, **params: Any) -> None:
        """Note an architectural change the handler made (see `structure`)."""
        self.structure.append({"op": op, **params})


@dataclass
class LogEntry:
    """One step of the log: its config, parameters before/after, trainable ones, seconds, facts."""

    config: dict[str, Any]
    params_before: int
    params_after: int
    trainable: int
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`occamtune.json`'s `steps`): the fields, then the facts."""
        return {"config": self.config, "params_before": self.params_before,
                "params_after": self.params_after, "trainable": self.trainable,
                "seconds": self.seconds, **self.facts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogEntry:
        names = [f.name for f in dataclasses.fields(cls) if f.name != "facts"]
        return cls(**{k: data.get(k) for k in names},
                   facts={k: v for k, v in data.items() if k not in names})


@dataclass
class CompressionRecord:
    """Everything a model's compression left for the artifact and for later steps.

    Attributes:
        steps: the log, one entry per step applied.
        structure: every architectural change, in order (replayed when loading an artifact).
        codes: tensor name -> k-bit codes of the quantized tensors.
        int8_runtime: inference should use int8 dynamic kernels (`to_int8_runtime`).
    """

    steps: list[LogEntry] = field(default_factory=list)
    structure: list[dict[str, Any]] = field(default_factory=list)
    codes: dict[str, QuantCodes] = field(default_factory=dict)
    int8_runtime: bool = False

    def pipeline(self) -> list[dict[str, Any]]:
        """The configs applied, in their YAML form."""
        return [step.config for step in self.steps]

    def log(self) -> list[dict[str, Any]]:
        """The steps in their JSON form."""
        return [step.to_dict() for step in self.steps]

    def add(self, entry: LogEntry, step: StepRecord) -> CompressionRecord:
        """A new record: this one followed by a step (the model's own record is left as it is)."""
        runtime = self.int8_runtime if step.int8_runtime is None else step.int8_runtime
        return CompressionRecord([*self.steps, entry], [*self.structure, *step.structure],
                                 {**self.codes, **step.codes}, runtime)

    @classmethod
    def from_saved(cls, steps: list[dict[str, Any]], structure: list[dict[str, Any]],
                   int8_runtime: bool) -> CompressionRecord:
        """A record from an artifact's `occamtune.json` steps and manifest structure (codes are
        added by the loader as it decodes them)."""
        return cls([LogEntry.from_dict(s) for s in steps], list(structure), {}, int8_runtime)


def record_of(model: nn.Module) -> CompressionRecord:
    """The model's compression record (an empty one when it was never compressed)."""
    record = getattr(model, RECORD_ATTR, None)
    return record if isinstance(record, CompressionRecord) else CompressionRecord()


def set_record(model: nn.Module, record: CompressionRecord) -> None:
    setattr(model, RECORD_ATTR, record)
