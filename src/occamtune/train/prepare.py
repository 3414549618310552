"""From a run config to encoded examples: find the files, read them, fix the label set, encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occamtune.config import DataConfig
from occamtune.errors import ConfigError, DataError
from occamtune.tasks import Task


@dataclass
class Split:
    """One split of a data set: the parsed file and its encoded features."""

    name: str
    path: str
    dataset: Any  # what the task's `read` gives
    features: list[Any] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.dataset.items)


def split_paths(cfg: DataConfig) -> dict[str, Path]:
    """train/dev/test paths from a folder, overridden by files named one by one (a named split
    is not looked for in the folder, so `--data FOLDER --train FILE` takes the folder's others)."""
    from occamtune.data.folder import find_splits

    named = {name: Path(getattr(cfg, name)) for name in ("train", "dev", "test")
             if getattr(cfg, name)}
    paths: dict[str, Path] = {}
    if cfg.path:
        folder = Path(cfg.path)
        if not folder.exists():
            raise DataError(folder, "data folder does not exist; check --data")
        paths = dict(find_splits(folder, named)) if folder.is_dir() else {"train": folder}
    paths.update(named)
    if "train" not in paths:
        raise ConfigError("no training data: give --data FOLDER or data.train=FILE")
    return paths


def read_splits(task: Task, cfg: DataConfig, seed: int) -> dict[str, Split]:
    """Read every split; without a dev file, split one off the training data with a fixed seed."""
    from occamtune.data.folder import split_off_dev

    paths = split_paths(cfg)
    splits = {n: Split(n, str(p), task.read(p, cfg)) for n, p in paths.items()}
    if "dev" not in splits:
        train = splits["train"]
        rest, dev = split_off_dev(train.dataset.items, cfg.dev_fraction, seed)
        dev_ds = train.dataset.with_items(dev)
        train.dataset = train.dataset.with_items(rest)
        splits["dev"] = Split("dev", f"{train.path} (held-out {cfg.dev_fraction:.0%})", dev_ds)
    return splits


def encode_splits(task: Task, splits: dict[str, Split], tokenizer: Any, labels: list[str],
                  cfg: DataConfig) -> None:
    """Check every split's labels against `labels` and encode it (in place)."""
    for split in splits.values():
        task.check_labels(split.dataset, labels)
        split.features = task.encode(split.dataset, tokenizer, labels, cfg)
