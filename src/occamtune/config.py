"""Typed run configuration: dataclasses that validate themselves, YAML load/dump, dotted overrides.

    cfg = load_config("configs/ner-conll2003.yaml", ["train.lr=1e-4", "train.epochs=2"])
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from occamtune.errors import ConfigError


@dataclass
class DataConfig:
    """Where the data is and how to read it. `path` is a folder with train/dev/test files; or name
    each file (see docs/data.md for the formats)."""

    path: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    label_column: int = -1  # CoNLL: the column holding the label
    encoding: str = "utf-8"  # text files' encoding (e.g. latin-1); a UTF-8 BOM is always skipped
    # Tables (Parquet, JSON lines, a `datasets` folder): the column of the input (classification:
    # the text; NER: the token list) and of the labels; None: the usual names (text/sentence,
    # tokens/words; label, ner_tags/tags).
    input_field: str | None = None
    label_field: str | None = None
    # Label names of integer labels (index i names label i) when the data's own metadata has none
    labels: list[str] | None = None
    max_length: int = 128
    stride: int | None = None  # sub-words shared by consecutive windows; None: max_length // 4
    dev_fraction: float = 0.1
    # NER: sub-words of the neighbouring sentences of the same document (CoNLL `-DOCSTART-`)
    # put around each sentence as unlabelled context; 0 turns it off.
    context: int = 0

    def __post_init__(self) -> None:
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"data.encoding={self.encoding!r} is not an encoding Python knows; "
                              "use e.g. utf-8, latin-1, cp1252, utf-16") from None
        if self.labels is not None and (not isinstance(self.labels, list) or len(set(self.labels))
                                        != len(self.labels) or not self.labels):
            raise ConfigError(f"data.labels must be a list of distinct label names (index i names "
                              f"integer label i), got {self.labels!r}")
        if self.labels is not None:
            self.labels = [str(name) for name in self.labels]
        if not 0 <= self.context <= self.max_length:
            raise ConfigError(f"data.context must be in [0, max_length = {self.max_length}], "
                              f"got {self.context}")
        if self.stride is None:
            self.stride = self.max_length // 4
        if self.max_length < 8:
            raise ConfigError(f"data.max_length must be at least 8, got {self.max_length}")
        if not 0 <= self.stride <= self.max_length // 2:
            raise ConfigError(
                f"data.stride must be in [0, max_length/2 = {self.max_length // 2}], got {self.stride}"
            )


@dataclass
class ModelConfig:
    """The pretrained model and the head put on it."""

    name: str = "minilm"
    dropout: float = 0.1
    shape_features: bool | None = None  # None: on for uncased models (NER)
    pooling: str = "mean"


@dataclass
class TrainConfig:
    """Optimisation settings."""

    epochs: float = 3.0
    batch_size: int = 32
    eval_batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-4
    head_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.01
    warmup: float = 0.1
    schedule: str = "linear"
    max_grad_norm: float = 1.0
    seed: int = 13
    eval_every: int = 0  # steps; 0 = once per epoch
    patience: int = 3
    group_by_length: bool = True
    max_steps: int = 0  # 0 = no limit
    threads: int = 0  # 0 = torch's default
    # decay of an exponential moving average of the weights, evaluated and kept instead of the
    # raw weights (Polyak averaging); 0 turns it off
    ema: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.optimizer in ("adamw", "sgd"), f"train.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}"),
            (self.schedule in ("linear", "cosine", "constant"),
             f"train.schedule must be 'linear', 'cosine' or 'constant', got {self.schedule!r}"),
            (self.lr > 0, f"train.lr must be > 0, got {self.lr}"),
            (self.epochs > 0, f"train.epochs must be > 0, got {self.epochs}"),
            (self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}"),
            (0 <= self.warmup < 1, f"train.warmup must be a fraction in [0, 1), got {self.warmup}"),
            (self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}"),
            (self.patience >= 1, f"train.patience must be >= 1, got {self.patience}"),
            (0 <= self.ema < 1, f"train.ema must be a decay in [0, 1) (0: off), got {self.ema}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class RunConfig:
    """Everything a training run needs."""

    task: str = "ner"  # a registered task (occamtune.tasks.TASKS), checked when the run starts
    output: str = "runs/model"
    overwrite: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(f"task must be a task's name (e.g. ner, classify), got {self.task!r}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict; unknown keys are errors that list the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"unknown config key {prefix + key!r}; valid keys here: "
                f"{', '.join(prefix + n for n in sorted(names))}"
            )
        kwargs[key] = _coerce(hints[key], value, prefix + key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    value = yaml_number(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {}, key + ".")
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool, float) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r} must be {tp.__name__}, got {value!r}")
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. train.lr=1e-4)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(raw)
    return data


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def yaml_number(value: Any) -> Any:
    """`value`, or the float it spells when PyYAML left it a string: YAML 1.1 reads `1e-4`
    (an exponent without a dot) as text, where every user means a number."""
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def _parse_value(raw: str) -> Any:
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # an override's number in any spelling float() reads
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from defaults) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return from_dict(RunConfig, apply_overrides(data, overrides or []))


def dump_config(config: Any) -> str:
    """YAML text of a config dataclass."""
    return yaml.safe_dump(asdict(config), sort_keys=False)
