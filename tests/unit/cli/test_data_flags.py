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


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def test_train_classify_on_datasets_parquet(tmp_path: Path, tiny_model_dir: Path,
                                            sst_tiny: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    features = {"text": {"dtype": "string", "_type": "Value"},
                "label": {"names": ["negative", "positive"], "_type": "ClassLabel"}}
    folder = tmp_path / "hub"
    folder.mkdir()
    for src, split in (("train.txt", "train"), ("dev.txt", "validation"), ("test.txt", "test")):
        rows = [{"text": t, "label": int(lab)} for lab, t in (ln.split(" ", 1) for ln in
                                                              _lines(sst_tiny / src))]
        table = pa.Table.from_pylist(rows).replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features}})})
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
    assert main(["train", "--task", "classify", "--data", str(folder), "--model",
                 str(tiny_model_dir), "--output", str(tmp_path / "run"), *TINY]) == 0
    meta = json.loads((tmp_path / "run" / "occamtune.json").read_text())
    assert meta["head"]["labels"] == ["negative", "positive"]


def test_train_ner_on_datasets_json_lines(tmp_path: Path, tiny_model_dir: Path) -> None:
    from occamtune.data import read_conll

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    folder = tmp_path / "hub"
    folder.mkdir()
    for src, split in (("train.txt", "train"), ("valid.txt", "validation")):
        rows = [{"tokens": s.words, "ner_tags": [names.index(t) for t in s.labels]}
                for s in read_conll(FIXTURES / src).sentences]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"ner_tags": {
        "feature": {"names": names, "_type": "ClassLabel"}, "_type": "Sequence"}}}))
    assert main(["train", "--task", "ner", "--data", str(folder), "--model", str(tiny_model_dir),
                 "--output", str(tmp_path / "run"), *TINY]) == 0
    meta = json.loads((tmp_path / "run" / "occamtune.json").read_text())
    assert "B-PER" in meta["head"]["labels"]
