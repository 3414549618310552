"""Typed run configuration: dataclasses that validate themselves, YAML load/dump, dotted overrides.

    cfg = load_config("configs/ner-conll2003.yaml", ["train.lr=1e-4", "train.epochs=2"])
"""

from __future__ import annotations

import dataclasses
import math
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
    """Where the data is and how it is cut into model inputs.

    Attributes:
        path: a folder with train/dev/test files (or one training file).
        train: the training file (overrides the folder's).
        dev: the dev file, for early stopping (overrides the folder's).
        test: the test file (overrides the folder's).
        label_column: CoNLL column of the label (-1: the last).
        encoding: text files' encoding (e.g. latin-1); a UTF-8 BOM is always skipped.
        input_field: tables (Parquet, JSON lines, a `datasets` folder): the column of the input
            (classification: the text; NER: the token list); None: the usual names.
        label_field: tables: the column of the labels; None: the usual names (label,
            ner_tags/tags).
        labels: names of integer labels (index i names label i) when the data's own metadata
            has none.
        max_length: longest model input in sub-words, special tokens included; longer sentences
            are windowed (NER) or cut (classification).
        stride: sub-words shared by consecutive windows (None: max_length // 4).
        dev_fraction: share of the training file held out as dev when there is no dev file.
        dev_seed: seed of that held-out draw (apart from the training seed, so that a new
            training seed trains on the same examples).
        context: NER: sub-words of the neighbouring sentences of the same document put around
            each sentence as unlabelled context (0: off).
        max_train: use only the first this many training examples (None: all).
        max_dev: use only the first this many dev examples (None: all).
        max_test: use only the first this many test examples (None: all).
    """

    path: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    label_column: int = -1
    encoding: str = "utf-8"
    input_field: str | None = None
    label_field: str | None = None
    labels: list[str] | None = None
    max_length: int = 128
    stride: int | None = None
    dev_fraction: float = 0.1
    dev_seed: int = 13
    context: int = 0
    max_train: int | None = None
    max_dev: int | None = None
    max_test: int | None = None

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
        if not 0 < self.dev_fraction < 1:
            raise ConfigError(f"data.dev_fraction must be in (0, 1), got {self.dev_fraction}")
        for name in ("max_train", "max_dev", "max_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be at least 1 (or unset for all), got {value}")


POOLINGS = ("mean", "cls", "last")  # sentence vectors of the sequence heads


@dataclass
class ModelConfig:
    """The pretrained model and the head put on it.

    Attributes:
        name: 'minilm' (the packaged default), 'smollm2' (the packaged SmolLM2-135M-Instruct
            decoder), a Hugging Face model folder, a GGUF file (or a folder holding one), or an
            occamtune run to continue training.
        dropout: dropout before the head's output layer.
        shape_features: NER: embed word shapes (None: on for uncased models, which cannot see
            capitalisation).
        pooling: classification and relations: the sentence vector: 'mean' over the sub-words,
            'cls' (the first sub-word) or 'last' (the last real sub-word, the only one that has
            seen the whole text in a left-to-right decoder); relations read the entity
            markers under 'mean'. None: 'last' for decoder-only models (Llama, GPT-2), 'mean'
            for encoders.
    """

    name: str = "minilm"
    dropout: float = 0.1
    shape_features: bool | None = None  # None: on for uncased models (NER)
    pooling: str | None = None  # None: 'last' for decoder-only models, else 'mean'

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError(f"model.pooling must be one of {', '.join(map(repr, POOLINGS))} "
                              f"(or null for the model's default), got {self.pooling!r}")


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: passes over the training data (fractions allowed).
        batch_size: training examples per step.
        eval_batch_size: examples per batch when evaluating.
        optimizer: 'adamw' or 'sgd'.
        lr: peak learning rate of the encoder.
        head_lr: learning rate of the task head and of the weights the pretrained checkpoint
            lacks, e.g. a warm-started decoder's cross-attention (None: lr).
        momentum: SGD momentum.
        weight_decay: AdamW / SGD weight decay (not on biases and norms).
        warmup: fraction of the steps with a linearly rising learning rate.
        schedule: learning-rate decay after warm-up: 'linear', 'cosine' or 'constant'.
        max_grad_norm: gradient clipping norm.
        seed: seed of the initialisation, the batch order and dropout.
        eval_every: evaluate on dev every this many steps (0: once per epoch).
        patience: stop after this many evaluations without a better dev score.
        group_by_length: batches of similar lengths (less padding, faster).
        max_steps: stop after this many steps (0: no limit).
        threads: CPU threads (0: torch's default).
        ema: decay of an exponential moving average of the weights, evaluated and kept instead
            of the raw weights (Polyak averaging); 0: off.
    """

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
    eval_every: int = 0
    patience: int = 3
    group_by_length: bool = True
    max_steps: int = 0
    threads: int = 0
    ema: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.optimizer in ("adamw", "sgd"), f"train.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}"),
            (self.schedule in ("linear", "cosine", "constant"),
             f"train.schedule must be 'linear', 'cosine' or 'constant', got {self.schedule!r}"),
            (0 < self.lr < math.inf, f"train.lr must be a finite number > 0, got {self.lr}"),
            (self.head_lr is None or 0 < self.head_lr < math.inf,
             f"train.head_lr must be a finite number > 0 or null, got {self.head_lr}"),
            (0 < self.epochs < math.inf, f"train.epochs must be a finite number > 0, got {self.epochs}"),
            (self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}"),
            (self.eval_batch_size >= 1, f"train.eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (self.max_steps >= 0, f"train.max_steps must be >= 0 (0: no limit), got {self.max_steps}"),
            (self.eval_every >= 0, f"train.eval_every must be >= 0 (0: each epoch), got {self.eval_every}"),
            (self.threads >= 0, f"train.threads must be >= 0 (0: torch's default), got {self.threads}"),
            (0 <= self.momentum < 1, f"train.momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.max_grad_norm < math.inf,
             f"train.max_grad_norm must be a finite number >= 0 (0: off), got {self.max_grad_norm}"),
            (0 <= self.warmup < 1, f"train.warmup must be a fraction in [0, 1), got {self.warmup}"),
            (0 <= self.weight_decay < math.inf,
             f"train.weight_decay must be a finite number >= 0, got {self.weight_decay}"),
            (self.patience >= 1, f"train.patience must be >= 1, got {self.patience}"),
            (0 <= self.ema < 1, f"train.ema must be a decay in [0, 1) (0: off), got {self.ema}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class GenerateConfig:
    """Text generation (the `generate` task): the prompt and the decoding.

    Attributes:
        instruction: the request put before the source text in the prompt (None: one for the
            data: summarize, or translate between the two files' languages).
        max_new_tokens: the longest generated text in sub-words; training targets are cut there.
        num_beams: beam width (1: greedy decoding).
        length_penalty: beam search: the exponent of the length that divides a beam's log
            probability (above 1 favours longer texts).
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0: off).
        repetition_penalty: divide the logits of tokens already written by this (1: off).
        tie_encoder_decoder: an encoder-only checkpoint warm-started as an encoder-decoder: one
            set of weights for both halves (Rothe et al. 2020's "share"; the cross-attention
            stays the decoder's own).
    """

    instruction: str | None = None
    max_new_tokens: int = 64
    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    tie_encoder_decoder: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"generate.max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.num_beams >= 1, f"generate.num_beams must be >= 1, got {self.num_beams}"),
            (self.no_repeat_ngram_size >= 0,
             f"generate.no_repeat_ngram_size must be >= 0 (0: off), got {self.no_repeat_ngram_size}"),
            (0 < self.repetition_penalty < math.inf,
             f"generate.repetition_penalty must be a number > 0 (1: off), got {self.repetition_penalty}"),
            (math.isfinite(self.length_penalty),
             f"generate.length_penalty must be a finite number, got {self.length_penalty}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# the generate settings that only steer decoding: a trained generator's can change at inference
DECODING = ("max_new_tokens", "num_beams", "length_penalty", "no_repeat_ngram_size",
            "repetition_penalty")


def decoding_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Decoding settings given at inference (`generate.KEY` without its section: values as
    typed, text parsed as an override is), checked as a training config's are."""
    fixed = [k for k in values if k not in DECODING]
    if fixed:
        names = {f.name for f in dataclasses.fields(GenerateConfig)}
        what = "are fixed by training" if set(fixed) <= names else "are not generate settings"
        raise ConfigError(f"{', '.join('generate.' + k for k in fixed)} {what}; decoding "
                          f"settings that can change: {', '.join('generate.' + k for k in DECODING)}")
    parsed = {k: _parse_value(v) if isinstance(v, str) else v for k, v in values.items()}
    config = from_dict(GenerateConfig, parsed, "generate.")
    return {k: getattr(config, k) for k in values}


@dataclass
class RunConfig:
    """Everything a training run needs.

    Attributes:
        task: the task: a registered task's name (`occamtune train --help` lists them).
        output: the run folder to write.
        overwrite: replace a non-empty output folder.
    """

    task: str = "ner"
    output: str = "runs/model"
    overwrite: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(f"task must be a task's name (e.g. ner, classify), got {self.task!r}")


@dataclass(frozen=True)
class ConfigKey:
    """One setting of a config: its dotted key, type, default and one-line description."""

    key: str
    type: Any
    default: Any
    doc: str


def field_docs(cls: type) -> dict[str, str]:
    """Field -> description, from the `Attributes:` section of a dataclass's docstring."""
    docs: dict[str, str] = {}
    current = None
    in_attrs = False
    for line in (cls.__doc__ or "").splitlines():
        text = line.strip()
        if text == "Attributes:":
            in_attrs = True
            continue
        if not in_attrs or not text:
            continue
        match = re.match(r"(\w+): (.*)", text)
        if match and line.startswith(" " * 8) and not line.startswith(" " * 12):
            current = match.group(1)
            docs[current] = match.group(2)
        elif current:
            docs[current] += " " + text
    return docs


def config_keys(cls: type | None = None, prefix: str = "") -> list[ConfigKey]:
    """Every setting of `cls` (default `RunConfig`), sections flattened to dotted keys."""
    cls = cls or RunConfig
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    out: list[ConfigKey] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += config_keys(hints[f.name], prefix + f.name + ".")
        else:
            out.append(ConfigKey(prefix + f.name, hints[f.name], f.default, docs.get(f.name, "")))
    return out


def nearest_keys(key: str, keys: list[str]) -> list[str]:
    """The valid keys a mistyped `key` most likely meant (same last part first)."""
    import difflib

    last = key.rsplit(".", 1)[-1]
    same = [k for k in keys if k.rsplit(".", 1)[-1] == last]
    return list(dict.fromkeys(same + difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
                              + difflib.get_close_matches(last, keys, n=3, cutoff=0.6)))[:3]


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict; unknown keys are errors that list the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            near = nearest_keys(prefix + key, [k.key for k in config_keys()])
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            raise ConfigError(
                f"unknown config key {prefix + key!r}; {hint}valid keys here: "
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
