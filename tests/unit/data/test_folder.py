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
    with pytest.raises(DataError, match=r"several files claim the dev split \(dev.txt, valid.txt\); "
                                        r"name the one to use with --dev FILE"):
        find_splits(_touch(tmp_path, "train.txt", "dev.txt", "valid.txt"))


@pytest.mark.parametrize("names, expected", [
    (("xyztrain.conll", "corpus.dev.conll", "corpus.test.annotated"),
     ("xyztrain.conll", "corpus.dev.conll", "corpus.test.annotated")),
    (("NAME.train.all", "NAME.Valid.all", "NAME.test.all"),
     ("NAME.train.all", "NAME.Valid.all", "NAME.test.all")),
    (("ENG.TRAIN", "eng.testa", "eng.testb"), ("ENG.TRAIN", "eng.testa", "eng.testb")),
    (("train-00000-of-00001.parquet", "validation-00000-of-00001.parquet",
      "test-00000-of-00001.parquet"),
     ("train-00000-of-00001.parquet", "validation-00000-of-00001.parquet",
      "test-00000-of-00001.parquet")),
    (("MyTrainSet.jsonl", "my_val.jsonl", "heldout_test.jsonl"),
     ("MyTrainSet.jsonl", "my_val.jsonl", "heldout_test.jsonl")),
])
def test_split_word_anywhere_in_the_name(tmp_path: Path, names: tuple[str, ...],
                                         expected: tuple[str, ...]) -> None:
    found = find_splits(_touch(tmp_path / "d", *names, "dataset_info.json", "test_notes.md"))
    assert (found["train"].name, found["dev"].name, found["test"].name) == expected


def test_two_names_claim_train(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"several files claim the train split "
                                        r"\(a.train.all, xyztrain.conll\)"):
        find_splits(_touch(tmp_path, "xyztrain.conll", "a.train.all"))


def test_named_splits_are_not_looked_for(tmp_path: Path) -> None:
    folder = _touch(tmp_path, "a.train.all", "b.train.all", "dev.txt", "test.txt")
    found = find_splits(folder, named=["train"])  # --data FOLDER --train FILE
    assert {k: p.name for k, p in found.items()} == {"dev": "dev.txt", "test": "test.txt"}
    assert find_splits(_touch(tmp_path / "e", "dev.txt"), named=["train"])["dev"].name == "dev.txt"


def test_split_paths_folder_plus_override(tmp_path: Path) -> None:
    from occamtune.config import DataConfig
    from occamtune.tasks import get_task
    from occamtune.train.prepare import split_paths

    folder = _touch(tmp_path / "d", "train.txt", "valid.txt", "test.txt")
    own = _touch(tmp_path / "o", "mine.conll") / "mine.conll"
    paths = split_paths(get_task("ner"), DataConfig(path=str(folder), train=str(own)))
    assert {k: p.name for k, p in paths.items()} == {"train": "mine.conll", "dev": "valid.txt",
                                                     "test": "test.txt"}


def test_saved_datasets_folders(tmp_path: Path) -> None:
    root = tmp_path / "hf"
    for split in ("train", "validation", "test"):
        _touch(root / split, "state.json", "dataset_info.json")
    (root / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    assert {k: p.name for k, p in find_splits(root).items()} == {
        "train": "train", "dev": "validation", "test": "test"}
    assert find_splits(root / "train") == {"train": root / "train"}  # one saved Dataset


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
