"""Find train / dev / test files in a data folder; split a dev set off when there is none."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import TypeVar

from occamtune.errors import DataError

T = TypeVar("T")
EXTENSIONS = {"", ".txt", ".conll", ".tsv", ".csv", ".jsonl", ".json", ".iob", ".bio"}
PATTERNS = {  # checked on the file name without extension, lower-cased
    "train": re.compile(r"^(.*[._-])?train(ing)?([._-].*)?$"),
    "dev": re.compile(r"^(.*[._-])?(dev|valid(ation)?|val|testa)([._-].*)?$"),
    "test": re.compile(r"^(.*[._-])?(test|testb)([._-].*)?$"),
}


def find_splits(folder: str | Path) -> dict[str, Path]:
    """Map split name -> file. Dev: dev*/valid*/val*/testa; test: test*/testb."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    found: dict[str, list[Path]] = {name: [] for name in PATTERNS}
    for p in files:  # eng.train, train.txt, dev.jsonl, ...
        suffix = p.suffix.lower()
        stem = p.name[: -len(suffix)].lower() if suffix in EXTENSIONS and suffix else p.name.lower()
        for name, pattern in PATTERNS.items():
            if pattern.match(stem):
                found[name].append(p)
                break
    names = ", ".join(p.name for p in files) or "none"
    if not found["train"]:
        raise DataError(folder, f"no training file (train*) in this folder; files: {names}")
    for name, paths in found.items():
        if len(paths) > 1:
            raise DataError(folder, f"several {name} files: {', '.join(p.name for p in paths)}; "
                                    f"name the one to use with data.{name}=FILE")
    return {name: paths[0] for name, paths in found.items() if paths}


def split_off_dev(items: list[T], fraction: float = 0.1, seed: int = 13) -> tuple[list[T], list[T]]:
    """(rest, dev): a seeded random `fraction` of `items` (at least one) held out as dev."""
    if len(items) < 2:
        raise DataError("<train>", "too few training examples to hold out a dev set; give a dev file")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, int(round(fraction * len(items))))
    dev_idx = set(order[:n_dev])
    return [x for i, x in enumerate(items) if i not in dev_idx], [items[i] for i in sorted(dev_idx)]
