"""From a run config to encoded examples: find the files, read them, fix the label set, encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from occamtune.config import DataConfig
from occamtune.errors import ConfigError, DataError
from occamtune.io import note
from occamtune.tasks import Task
from occamtune.tasks.base import encode_for


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


def split_paths(task: Task, cfg: DataConfig) -> dict[str, Path]:
    """train/dev/test paths from a folder, overridden by files named one by one (a named split
    is not looked for in the folder, so `--data FOLDER --train FILE` takes the folder's others);
    where the task reads parallel files (its `data_suffix`, e.g. ".de"), only the folder's files
    ending so."""
    from occamtune.data.folder import find_splits

    suffix = task.data_suffix(cfg)

    named = {name: Path(getattr(cfg, name)) for name in ("train", "dev", "test")
             if getattr(cfg, name)}
    paths: dict[str, Path] = {}
    if cfg.path:
        folder = Path(cfg.path)
        if not folder.exists():
            raise DataError(folder, "data folder does not exist; check --data")
        paths = dict(find_splits(folder, named, suffix)) if folder.is_dir() else {"train": folder}
    paths.update(named)
    if "train" not in paths:
        raise ConfigError("no training data: give --data FOLDER or data.train=FILE")
    return paths


def read_splits(task: Task, cfg: DataConfig) -> dict[str, Split]:
    """Read every split; without a dev file, hold out `cfg.dev_fraction` of the training data
    (drawn with `cfg.dev_seed`); keep the first `cfg.max_<split>` examples where a cap is set."""
    from occamtune.data.folder import split_off_dev

    paths = split_paths(task, cfg)
    splits = {n: Split(n, str(p), task.read(p, cfg)) for n, p in paths.items()}
    if "dev" not in splits:
        train = splits["train"]
        rest, dev = split_off_dev(train.dataset.items, cfg.dev_fraction, cfg.dev_seed)
        dev_ds = train.dataset.with_items(dev)
        train.dataset = train.dataset.with_items(rest)
        splits["dev"] = Split("dev", f"{train.path} (held-out {cfg.dev_fraction:.0%})", dev_ds)
        note(f"no dev file: held out {len(dev)} of {len(dev) + len(rest)} training examples "
             f"({cfg.dev_fraction:.0%}, data.dev_seed={cfg.dev_seed}) as dev; give one with "
             "--dev FILE")
    for name, split in splits.items():
        cap = getattr(cfg, f"max_{name}", None)
        if cap is not None and split.size > cap:
            note(f"{name}: using the first {cap} of {split.size} examples (data.max_{name})")
            split.dataset = split.dataset.with_items(split.dataset.items[:cap])
    return splits


def encode_splits(task: Task, splits: dict[str, Split], tokenizer: Any, labels: list[str],
                  cfg: DataConfig, head: Any = None) -> None:
    """Check every split's labels against `labels` and encode it (in place; `head`: the model's
    HeadConfig, which some tasks' inputs depend on)."""
    for split in splits.values():
        task.check_labels(split.dataset, labels)
        split.features = encode_for(task, split.dataset, tokenizer, labels, cfg, head)


def describe_splits(task: Task, cfg: DataConfig) -> dict[str, Any]:
    """What the readers see: per split its file, format, size, tagging scheme and label
    counts; and the problems (the first per file, with its line) that would stop a run."""
    from collections import Counter

    report: dict[str, Any] = {"task": task.name, "splits": {}, "problems": []}
    try:
        paths = split_paths(task, cfg)
    except (ConfigError, DataError) as exc:
        report["problems"].append(str(exc))
        return report
    for name, path in paths.items():
        entry: dict[str, Any] = {"file": str(path), "format": path.suffix.lstrip(".") or "text"}
        try:
            dataset = task.read(path, cfg)
        except DataError as exc:
            report["problems"].append(str(exc))
            entry["error"] = str(exc)
        else:
            counts = Counter(lab for x in dataset.items for lab in task.example_labels(x))
            entry.update(examples=len(dataset.items), labels=dict(counts.most_common()))
            if getattr(dataset, "scheme", None):
                entry["scheme"] = dataset.scheme
        report["splits"][name] = entry
    if "dev" not in paths:
        report["dev"] = (f"no dev file: occamtune train holds out {cfg.dev_fraction:.0%} of train "
                         f"(data.dev_seed={cfg.dev_seed})")
    return report
