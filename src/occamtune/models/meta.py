"""The run's metadata (`occamtune.json`): one typed record, written once and read everywhere.

Every model folder (a trained run, a packed artifact, an ONNX export) carries one. The settings
that prediction needs (the head, the input length and windowing) have their home here; their
defaults are `DataConfig`'s, so that a setting has one default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from occamtune.config import POOLINGS, DataConfig
from occamtune.errors import ConfigError, ModelError
from occamtune.io import atomic_write_text

META_FILE = "occamtune.json"


@dataclass
class HeadConfig:
    """Settings of the task head.

    Attributes:
        task: the registered task's name (see `occamtune.tasks.TASKS`).
        labels: label names, index = class id.
        dropout: dropout before the output layer.
        shape_features: embed word shapes (token tasks); helps uncased encoders see
            capitalisation.
        shape_dim: size of the word-shape embedding.
        pooling: "mean", "cls" or "last" (the last real sub-word) sentence pooling (sequence
            tasks).
        extra: task-specific head settings, read only by that task.
    """

    task: str
    labels: list[str]
    dropout: float = 0.1
    shape_features: bool = False
    shape_dim: int = 16
    pooling: str = "mean"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from occamtune.tasks import get_task

        task = get_task(self.task)  # a clear error naming the registered tasks
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, "
                              f"got {self.pooling!r}")
        if len(self.labels) < 2 and not task.generative:
            raise ConfigError(f"need at least 2 labels, got {self.labels}")


@dataclass
class RunMeta:
    """What a model folder holds and how to feed it.

    Attributes:
        head: the task head's settings (task, labels, ...).
        format: how the weights are stored: a name registered with
            `occamtune.models.formats.register_format` ("safetensors", "artifact", "onnx").
        base_model: the pretrained model the run started from.
        max_length: the longest input in sub-words, special tokens included (longer texts are
            windowed).
        stride: sub-words shared by consecutive windows (None: `max_length // 4`).
        context: sub-words of neighbouring sentences put around each sentence (token tasks).
        parameters: parameter count of the saved model.
        source: the folder this one was made from (compression, export).
        fp32_bytes: size of the fp32 weights it was made from (for size ratios).
        format_info: what the storage format alone reads (e.g. the artifact's pipeline and
            codec, the ONNX file's name); saved at the top level of occamtune.json.
    """

    head: HeadConfig
    format: str = "safetensors"
    base_model: str = ""
    max_length: int = DataConfig.max_length
    stride: int | None = None
    context: int = DataConfig.context
    parameters: int | None = None
    source: str | None = None
    fp32_bytes: int | None = None
    format_info: dict[str, Any] = field(default_factory=dict)

    def data_config(self) -> DataConfig:
        """The input settings as a `DataConfig` (for encoding new text like the training data)."""
        return DataConfig(max_length=self.max_length, stride=self.stride, context=self.context)

    def derived(self, format: str, **changes: Any) -> RunMeta:
        """This run's settings for a model made from it in another storage `format`."""
        return dataclasses.replace(self, format=format, **{"format_info": {}, **changes})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("head", "format_info")}
        return {"head": asdict(self.head), **out, **self.format_info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        """Read `occamtune.json`, also as written before it was typed (an `artifact: true` or
        `onnx: FILE` key gave the format)."""
        data = dict(data)
        names = {f.name for f in dataclasses.fields(cls)} - {"format_info"}
        typed = {k: data.pop(k) for k in list(data) if k in names}
        if "format" not in typed:
            typed["format"] = ("artifact" if data.get("artifact") else
                               "onnx" if data.get("onnx") else "safetensors")
        typed["head"] = HeadConfig(**typed["head"])
        return cls(**typed, format_info=data)


def read_meta(folder: str | Path) -> RunMeta:
    """The folder's `occamtune.json`, with a clear error when the folder is not a model folder."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ModelError(
            f"{folder} is not an occamtune model folder (no {META_FILE}); give the output folder "
            "of `occamtune train`, `occamtune compress` or `occamtune export`."
        )
    try:
        return RunMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path} is damaged or not an occamtune metadata file: {exc}") from exc


def write_meta(folder: str | Path, meta: RunMeta) -> None:
    atomic_write_text(Path(folder) / META_FILE, json.dumps(meta.to_dict(), indent=2))
