"""From a run config to encoded examples: find the files, read them, fix the label set, encode."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occamtune.config import DataConfig
from occamtune.errors import ConfigError, DataError


@dataclass
class Split:
    """One split of a data set: the parsed file and its encoded features."""

    name: str
    path: str
    dataset: Any  # TokenDataset or TextDataset
    features: list[Any] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(items(self.dataset))


def items(dataset: Any) -> list[Any]:
    """Sentences of a token data set, examples of a text data set."""
    return dataset.sentences if hasattr(dataset, "sentences") else dataset.examples


def read_file(task: str, path: str | Path, label_column: int = -1, has_labels: bool = True) -> Any:
    from occamtune.data.conll import read_conll
    from occamtune.data.text import read_text

    if task == "ner":
        return read_conll(path, label_column=label_column, has_labels=has_labels)
    return read_text(path)


def split_paths(cfg: DataConfig) -> dict[str, Path]:
    """train/dev/test paths from a folder, overridden by files named one by one."""
    from occamtune.data.folder import find_splits

    paths: dict[str, Path] = {}
    if cfg.path:
        folder = Path(cfg.path)
        if not folder.exists():
            raise DataError(folder, "data folder does not exist; check --data")
        paths = dict(find_splits(folder)) if folder.is_dir() else {"train": folder}
    for name in ("train", "dev", "test"):
        if getattr(cfg, name):
            paths[name] = Path(getattr(cfg, name))
    if "train" not in paths:
        raise ConfigError("no training data: give --data FOLDER or data.train=FILE")
    return paths


def read_splits(task: str, cfg: DataConfig, seed: int) -> dict[str, Split]:
    """Read every split; without a dev file, split one off the training data with a fixed seed."""
    from occamtune.data.folder import split_off_dev

    paths = split_paths(cfg)
    splits = {n: Split(n, str(p), read_file(task, p, cfg.label_column)) for n, p in paths.items()}
    for split in splits.values():
        scheme = getattr(split.dataset, "scheme", "IOB2")
        if scheme not in ("IOB2", "none"):
            print(f"occamtune: note: {split.path} uses {scheme} tags; converted to IOB2", file=sys.stderr)
    if "dev" not in splits:
        train = splits["train"]
        rest, dev = split_off_dev(items(train.dataset), cfg.dev_fraction, seed)
        _set_items(train.dataset, rest)
        dev_ds = _copy_with(train.dataset, dev)
        splits["dev"] = Split("dev", f"{train.path} (held-out {cfg.dev_fraction:.0%})", dev_ds)
    return splits


def _set_items(dataset: Any, new: list[Any]) -> None:
    if hasattr(dataset, "sentences"):
        dataset.sentences = new
    else:
        dataset.examples = new


def _copy_with(dataset: Any, new: list[Any]) -> Any:
    import copy

    out = copy.copy(dataset)
    _set_items(out, new)
    return out


def label_set(task: str, dataset: Any) -> list[str]:
    """Labels seen in the training data: for NER `O` first, then B-/I- by entity type."""
    if task == "ner":
        tags = {t for s in dataset.sentences for t in (s.labels or [])}
        types = sorted({t[2:] for t in tags if t != "O"})
        return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    return sorted({e.label for e in dataset.examples})


def check_labels(task: str, split: Split, labels: list[str]) -> None:
    """A label in dev/test that training never saw is an error naming its line."""
    known = set(labels)
    if task == "ner":
        for sent in split.dataset.sentences:
            for i, tag in enumerate(sent.labels or []):
                if tag not in known:
                    raise DataError(split.path, _unknown(tag, labels), line=sent.line + i)
    else:
        for ex in split.dataset.examples:
            if ex.label is not None and ex.label not in known:
                raise DataError(split.path, _unknown(ex.label, labels), line=ex.line)


def _unknown(tag: str, labels: list[str]) -> str:
    return (f"label {tag!r} never occurs in the training data (known: {', '.join(labels)}); "
            "fix the label or add examples of it to the training file")


def encode_split(task: str, dataset: Any, tokenizer: Any, labels: list[str], cfg: DataConfig,
                 shape_features: bool = True) -> list[Any]:
    """Model inputs for every sentence (NER windows) or text (classification)."""
    from occamtune.data.encode import encode_texts, encode_words

    index = {lab: i for i, lab in enumerate(labels)}
    if task == "ner":
        sents = dataset.sentences
        label_ids = None
        if all(s.labels is not None for s in sents):
            label_ids = [[index[t] for t in s.labels] for s in sents]
        return encode_words([s.words for s in sents], tokenizer, cfg.max_length,
                            label_ids=label_ids, stride=cfg.stride,
                            docs=[s.doc for s in sents],
                            context=cfg.context)
    feats = encode_texts([e.text for e in dataset.examples], tokenizer, cfg.max_length)
    for feat, ex in zip(feats, dataset.examples):
        if ex.label is not None:
            feat["label"] = index[ex.label]
    return feats
