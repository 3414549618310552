"""`occamtune train` on data as users name and store it: split words anywhere in file names,
--train/--dev/--test beside --data, and a datasets Parquet file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from occamtune.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "conll_tiny"
TINY = ["--quiet", "train.batch_size=4", "train.max_steps=2", "data.max_length=32", "data.stride=4"]


def _captured(monkeypatch: pytest.MonkeyPatch) -> list:
    import occamtune.api

    seen: list = []

    def fake_train(cfg, progress=True):
        seen.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(occamtune.api, "train", fake_train)
    return seen


def test_train_dev_test_flags_set_the_data_files(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _captured(monkeypatch)
    with pytest.raises(SystemExit):
        main(["train", "--task", "ner", "--data", "corpus", "--train", "mine.conll",
              "--dev", "d.conll", "--test", "t.conll"])
    data = seen[0].data
    assert (data.path, data.train, data.dev, data.test) == ("corpus", "mine.conll", "d.conll",
                                                            "t.conll")


def test_train_on_a_folder_of_unusual_names(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for src, dst in (("train.txt", "xyztrain.conll"), ("valid.txt", "corpus.dev.conll"),
                     ("test.txt", "corpus.test.annotated")):
        shutil.copy(FIXTURES / src, folder / dst)
    code = main(["train", "--task", "ner", "--data", str(folder), "--model", str(tiny_model_dir),
                 "--output", str(tmp_path / "run"), *TINY])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test"] is not None  # the test file was found and scored
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "corpus" in cfg


def test_two_train_files_then_name_one(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for dst in ("a.train.all", "b.train.all"):
        shutil.copy(FIXTURES / "train.txt", folder / dst)
    shutil.copy(FIXTURES / "valid.txt", folder / "dev.txt")
    args = ["train", "--task", "ner", "--data", str(folder), "--model", str(tiny_model_dir),
            "--output", str(tmp_path / "run"), *TINY]
    assert main(args) == 2
    assert "several files claim the train split (a.train.all, b.train.all)" in capsys.readouterr().err
    assert main([*args, "--train", str(folder / "b.train.all")]) == 0
