"""Find the train / dev / test files of a data folder; split a dev set off when there is none."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import TypeVar

from occamtune.errors import ConfigError, DataError

T = TypeVar("T")
EXTENSIONS = frozenset({"", ".txt", ".conll", ".tsv", ".csv", ".jsonl", ".json", ".iob", ".bio"})
_TOKEN_SPLIT = re.compile(r"[._\- ]+")


def _split_of_token(token: str) -> str | None:
    """The split a name part stands for: testa is dev and testb test (CoNLL-2003 names)."""
    if token.startswith("testa"):
        return "dev"
    if token.startswith("testb"):
        return "test"
    if token.startswith(("dev", "valid", "val")):
        return "dev"
    if token.startswith("test"):
        return "test"
    if token.startswith("train"):
        return "train"
    return None


def split_of(path: Path) -> str | None:
    """The split a data file's name stands for ("train", "dev", "test"), or None.

    A data file has one of EXTENSIONS or ends in a split name itself (`eng.train`,
    `eng.testa`). When several name parts name a split, the last one wins (`train_dev` is dev).
    """
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        stem = name[: len(name) - len(suffix)]
    elif _split_of_token(suffix[1:]) is not None:
        stem = name
    else:
        return None
    splits = [s for s in map(_split_of_token, _TOKEN_SPLIT.split(stem)) if s is not None]
    return splits[-1] if splits else None


def find_splits(folder: str | Path) -> dict[str, Path]:
    """Map split name to file for the data files of a folder.

    train: `train*`; dev: `dev*`, `valid*`, `val*`, `testa` (also `eng.testa`); test: `test*`
    and `testb`. Hidden files and files of other types (e.g. `train.py`) are ignored.

    Args:
        folder: the data folder.

    Returns:
        {"train": path, "dev": path, "test": path}, without the splits that have no file.

    Raises:
        DataError: the folder does not exist, has no training file, or two files match a split
            (the message lists the folder's files).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "is not a folder; give the folder holding train/dev/test files")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    found: dict[str, list[Path]] = {"train": [], "dev": [], "test": []}
    for p in files:
        split = split_of(p)
        if split is not None:
            found[split].append(p)
    names = ", ".join(p.name for p in files) or "none"
    if not found["train"]:
        raise DataError(folder, f"no training file (train*) in this folder; its files: {names}")
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(folder, f"several {split} files ({', '.join(p.name for p in paths)}); "
                                    f"name the one to use with data.{split}=FILE; "
                                    f"the folder's files: {names}")
    return {split: paths[0] for split, paths in found.items() if paths}


def split_off_dev(items: list[T], fraction: float = 0.1, seed: int = 13) -> tuple[list[T], list[T]]:
    """Hold out a seeded random fraction of `items` as a dev set.

    Args:
        items: the training examples.
        fraction: the share to hold out (at least one item), between 0 and 1.
        seed: the random seed; the same seed gives the same split.

    Returns:
        (rest, dev), both in the original order.

    Raises:
        ConfigError: fraction is not between 0 and 1.
        DataError: fewer than two items.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.dev_fraction={fraction} must be between 0 and 1 (e.g. 0.1)")
    if len(items) < 2:
        raise DataError("<train>", f"{len(items)} training example(s): too few to hold out a dev "
                                   "set; give a dev file")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_dev = min(len(items) - 1, max(1, round(fraction * len(items))))
    dev_idx = set(order[:n_dev])
    return [x for i, x in enumerate(items) if i not in dev_idx], [items[i] for i in sorted(dev_idx)]
