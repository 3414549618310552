"""Find the train / dev / test files of a data folder; split a dev set off when there is none."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from occamtune.errors import ConfigError, DataError

T = TypeVar("T")
# Files of these types are never data, even when their name says `train` (train.py, test.md).
NOT_DATA = frozenset({
    ".py", ".pyc", ".sh", ".md", ".rst", ".html", ".pdf", ".png", ".jpg", ".yaml", ".yml", ".toml",
    ".cfg", ".ini", ".log", ".lock", ".ipynb", ".zip", ".gz", ".bz2", ".xz", ".tar", ".tgz",
    ".pt", ".bin", ".safetensors", ".pkl", ".swp",
})
# A split word anywhere in the name, case-insensitive; the longer spellings come first so that
# `testa` is dev and `testb` test (CoNLL-2003), `valid` is not read as `val` + `id`.
_SPLIT_WORD = re.compile(r"testa|testb|train|validation|valid|val|dev|test")
_SPLIT_OF = {"testa": "dev", "testb": "test", "train": "train", "validation": "dev",
             "valid": "dev", "val": "dev", "dev": "dev", "test": "test"}


def split_of(path: Path) -> str | None:
    """The split a data file's name stands for ("train", "dev", "test"), or None.

    The split is a word anywhere in the name, case-insensitive (`xyztrain.conll`,
    `corpus.dev.conll`, `NAME.test.all`, `eng.testa`, `train-00000-of-00001.parquet`). When
    several words name a split, the last one wins (`train_dev` is dev). Files whose type is never
    data (NOT_DATA: `train.py`, `test.md`) have no split.
    """
    if path.suffix.lower() in NOT_DATA:
        return None
    words = _SPLIT_WORD.findall(path.name.lower())
    return _SPLIT_OF[words[-1]] if words else None


_SHARD = re.compile(r"(?P<stem>.+)-(?P<i>\d+)-of-(?P<n>\d+)(?P<ext>\.[^.]+)")


def shards(path: Path) -> list[Path]:
    """Every shard of the set `path` belongs to (`train-00000-of-00003.parquet`, ...), in order;
    `[path]` when its name is no shard's.

    Raises:
        DataError: a shard of the set is missing.
    """
    match = _SHARD.fullmatch(path.name)
    if match is None:
        return [path]
    width, total = len(match["i"]), int(match["n"])
    names = [f"{match['stem']}-{i:0{width}d}-of-{match['n']}{match['ext']}" for i in range(total)]
    missing = [n for n in names if not (path.parent / n).is_file()]
    if missing:
        raise DataError(path, f"one of {total} shards, but {', '.join(missing)} is missing")
    return [path.parent / n for n in names]


def _one_shard_set(paths: list[Path]) -> list[Path]:
    """The first shard alone when `paths` are exactly the shards of one set (it stands for them
    all), else `paths`."""
    if len(paths) < 2 or not all(_SHARD.fullmatch(p.name) for p in paths):
        return paths
    first = min(paths)
    return [first] if sorted(shards(first)) == sorted(paths) else paths


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `datasets.Dataset.save_to_disk` (one split)."""
    return (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def _dataset_dict_splits(folder: Path) -> dict[str, Path] | None:
    """The split folders of a Hugging Face `save_to_disk` DatasetDict (`dataset_dict.json`)."""
    index = folder / "dataset_dict.json"
    if not index.is_file():
        return None
    try:
        names = json.loads(index.read_text(encoding="utf-8"))["splits"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(index, f"not a `datasets` DatasetDict index (no \"splits\" list): {exc}") \
            from exc
    out: dict[str, Path] = {}
    for name in names:
        split = split_of(Path(name))
        if split is not None and split not in out:
            out[split] = folder / name
    return out


def find_splits(folder: str | Path, named: Iterable[str] = (),
                suffix: str | None = None) -> dict[str, Path]:
    """Map split name to file for the data files of a folder.

    A file belongs to a split when its name holds one of the split words anywhere, in any case
    (train: `train`; dev: `dev`, `valid`, `val`, `testa`; test: `test`, `testb`). Hidden files
    and files of types that are never data (`train.py`, `notes.md`) are ignored. A folder written
    by `datasets`' `save_to_disk` gives its split folders (a DatasetDict) or is itself the
    training set (a Dataset). The shards of one set (`train-00000-of-00002.parquet`,
    `train-00001-of-00002.parquet`) are one split, given by the first shard.

    Args:
        folder: the data folder.
        named: splits the user names file by file (`data.train=FILE`): the folder need not have
            them, and several candidates for them are no error.
        suffix: parallel files (`train.de` beside `train.en`): only the files ending with this
            suffix (".de") are data files; the task finds the other side of each.

    Returns:
        {"train": path, "dev": path, "test": path}, without the splits that have no file.

    Raises:
        DataError: the folder does not exist, has no training file (and none is named), or two
            files claim one split (the message lists them and the folder's files).
    """
    folder, named = Path(folder), set(named)
    if not folder.is_dir():
        raise DataError(folder, "is not a folder; give the folder holding train/dev/test files")
    if is_saved_dataset(folder):
        return {} if "train" in named else {"train": folder}
    hf = _dataset_dict_splits(folder)
    if hf is not None:
        return {s: p for s, p in hf.items() if s not in named}
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and (suffix is None or p.name.endswith(suffix)))
    found: dict[str, list[Path]] = {"train": [], "dev": [], "test": []}
    for p in files:
        split = split_of(p)
        if split is not None and split not in named:
            found[split].append(p)
    names = ", ".join(p.name for p in files) or "none"
    if not found["train"] and "train" not in named:
        raise DataError(folder, f"no training file in this folder (a name holding `train`); its "
                                f"files: {names}; or name it with --train FILE")
    found = {split: _one_shard_set(paths) if paths else paths for split, paths in found.items()}
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(folder, f"several files claim the {split} split "
                                    f"({', '.join(p.name for p in paths)}); name the one to use "
                                    f"with --{split} FILE (data.{split}=FILE) or rename the others; "
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
