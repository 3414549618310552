from pathlib import Path

import pytest

from occamtune.data import find_splits, split_off_dev
from occamtune.errors import ConfigError, DataError


def _touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("x O\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("names, expected", [
    (("train.txt", "valid.txt", "test.txt"), ("train.txt", "valid.txt", "test.txt")),
    (("eng.train", "eng.testa", "eng.testb"), ("eng.train", "eng.testa", "eng.testb")),
    (("train.jsonl", "dev.jsonl", "test.jsonl"), ("train.jsonl", "dev.jsonl", "test.jsonl")),
    (("train", "val.tsv", "testb.iob"), ("train", "val.tsv", "testb.iob")),
    (("training_set.csv", "validation.bio", "test_set.conll"),
     ("training_set.csv", "validation.bio", "test_set.conll")),
])
def test_finds_splits(tmp_path: Path, names: tuple[str, ...], expected: tuple[str, ...]) -> None:
    found = find_splits(_touch(tmp_path / "d", *names, "README.md", "train.py", ".train.swp"))
    assert (found["train"].name, found["dev"].name, found["test"].name) == expected


def test_dev_and_test_are_optional(tmp_path: Path) -> None:
    assert set(find_splits(_touch(tmp_path, "train.txt"))) == {"train"}


def test_no_train_file_lists_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no training file .* files: dev.txt, notes.md"):
        find_splits(_touch(tmp_path, "dev.txt", "notes.md"))
    with pytest.raises(DataError, match="is not a folder"):
        find_splits(tmp_path / "missing")


def test_two_files_for_one_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"several dev files \(dev.txt, valid.txt\)"):
        find_splits(_touch(tmp_path, "train.txt", "dev.txt", "valid.txt"))


def test_split_off_dev_is_deterministic_partition() -> None:
    items = list(range(100))
    rest, dev = split_off_dev(items, 0.1, seed=1)
    assert len(dev) == 10 and sorted(rest + dev) == items
    assert rest == sorted(rest) and dev == sorted(dev)  # original order kept
    assert split_off_dev(items, 0.1, seed=1) == (rest, dev)
    assert split_off_dev(items, 0.1, seed=2) != (rest, dev)
    assert len(split_off_dev(items[:3], 0.1)[1]) == 1  # at least one


def test_split_off_dev_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="too few"):
        split_off_dev([1])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        split_off_dev([1, 2, 3], fraction=1.5)
