"""Tables as Hugging Face `datasets` writes them (Parquet, JSON lines, save_to_disk), read through
each task's `read`, and the encoding option of text files. Fixtures are written by the tests."""

import json
from pathlib import Path

import pytest

from occamtune.config import DataConfig
from occamtune.data.files import read_lines
from occamtune.data.tables import class_names
from occamtune.errors import ConfigError, DataError
from occamtune.tasks import get_task

NER_FEATURES = {"tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
                "ner_tags": {"feature": {"names": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
                                         "_type": "ClassLabel"}, "_type": "List"}}
CLS_FEATURES = {"text": {"dtype": "string", "_type": "Value"},
                "label": {"names": ["negative", "positive"], "_type": "ClassLabel"}}
NER_ROWS = [{"tokens": ["Ann", "Lee", "lives", "in", "Oslo"], "ner_tags": [1, 2, 0, 0, 3]},
            {"tokens": ["Bo"], "ner_tags": [1]}]
CLS_ROWS = [{"text": "a fine film", "label": 1}, {"text": "dull", "label": 0}]


def _parquet(path: Path, rows: list[dict], features: dict | None) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.Table.from_pylist(rows)
    if features is not None:  # what datasets' to_parquet writes into the schema
        table = table.replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path)
    return path


def _jsonl(path: Path, rows: list[dict], features: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    if features is not None:
        (path.parent / "dataset_info.json").write_text(json.dumps({"features": features}))
    return path


def _ner(path: Path, **data) -> list:
    return get_task("ner").read(path, DataConfig(**data)).items


def _cls(path: Path, **data) -> list:
    return get_task("classify").read(path, DataConfig(**data)).items


def test_ner_parquet_names_tags_from_schema_metadata(tmp_path: Path) -> None:
    sents = _ner(_parquet(tmp_path / "train.parquet", NER_ROWS, NER_FEATURES))
    assert sents[0].words == ["Ann", "Lee", "lives", "in", "Oslo"]
    assert sents[0].labels == ["B-PER", "I-PER", "O", "O", "B-LOC"]
    assert [s.line for s in sents] == [1, 2]  # rows


def test_ner_jsonl_names_tags_from_dataset_info_beside(tmp_path: Path) -> None:
    sents = _ner(_jsonl(tmp_path / "d" / "train.jsonl", NER_ROWS, NER_FEATURES))
    assert sents[1].labels == ["B-PER"]


def test_ner_string_tags_other_columns_and_iob1(tmp_path: Path) -> None:
    rows = [{"words": ["Ann", "Lee"], "tags": ["I-PER", "I-PER"]},
            {"id": 2, "words": ["Oslo"], "tags": ["I-LOC"]}]
    assert _ner(_jsonl(tmp_path / "a.jsonl", rows))[0].labels == ["B-PER", "I-PER"]
    rows = [{"toks": ["Ann"], "gold": ["B-PER"]}]
    sents = _ner(_jsonl(tmp_path / "b.jsonl", rows), input_field="toks", label_field="gold")
    assert sents[0].labels == ["B-PER"]


def test_ner_empty_rows_are_skipped(tmp_path: Path) -> None:
    rows = [{"tokens": [], "ner_tags": []}, *NER_ROWS]
    sents = _ner(_jsonl(tmp_path / "d" / "train.jsonl", rows, NER_FEATURES))
    assert [s.line for s in sents] == [2, 3]
    with pytest.raises(DataError, match="no sentences"):
        _ner(_jsonl(tmp_path / "e" / "train.jsonl", rows[:1], NER_FEATURES))


def test_ner_integer_tags_without_names(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "train.jsonl", NER_ROWS)
    with pytest.raises(DataError, match=r"train.jsonl, line 1: integer label 1 and no label "
                                        r"names.*data.labels="):
        _ner(path)
    sents = _ner(path, labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert sents[0].labels[-1] == "B-LOC"
    with pytest.raises(DataError, match=r"line 1: integer label 3 is outside the 3 label names"):
        _ner(path, labels=["O", "B-PER", "I-PER"])


@pytest.mark.parametrize("row, message", [
    ({"tokens": ["a", "b"], "ner_tags": [0]}, r"line 2: expected a list of 2 tags"),
    ({"tokens": "a b", "ner_tags": [0]}, r"line 2: the tokens must be a list of strings"),
    ({"text": "a", "ner_tags": [0]}, r"line 2: the tokens must be a list of strings"),
    ({"tokens": ["a"], "ner_tags": ["X-PER"]}, r"line 2, token 1: .*X-PER"),
])
def test_ner_table_errors_name_file_and_line(tmp_path: Path, row: dict, message: str) -> None:
    rows = [{"tokens": ["Ann"], "ner_tags": ["B-PER"]}, row]
    with pytest.raises(DataError, match=message) as err:
        _ner(_jsonl(tmp_path / "bad.jsonl", rows))
    assert err.value.path.endswith("bad.jsonl")


def test_ner_parquet_errors_name_the_row(tmp_path: Path) -> None:
    rows = [{"tokens": ["Ann"], "ner_tags": [1]}, {"tokens": ["Bo", "x"], "ner_tags": [1]}]
    with pytest.raises(DataError, match=r"bad.parquet: row 2: expected a list of 2 tags"):
        _ner(_parquet(tmp_path / "bad.parquet", rows, NER_FEATURES))
    with pytest.raises(DataError, match=r"no column among \['tokens', 'words'\].*data.input_field"):
        _ner(_parquet(tmp_path / "cols.parquet", [{"x": ["a"]}], None))


def test_parquet_shards_are_one_split(tmp_path: Path) -> None:
    from occamtune.data.folder import find_splits

    for i in range(2):
        _parquet(tmp_path / f"train-0000{i}-of-00002.parquet", NER_ROWS[i:i + 1], NER_FEATURES)
    _parquet(tmp_path / "test-00000-of-00001.parquet", NER_ROWS, NER_FEATURES)
    splits = find_splits(tmp_path)
    assert splits["train"].name == "train-00000-of-00002.parquet"
    sents = _ner(splits["train"])
    assert [s.words[0] for s in sents] == ["Ann", "Bo"] and [s.line for s in sents] == [1, 1]
    bad = [{"tokens": ["x", "y"], "ner_tags": [0]}]
    _parquet(tmp_path / "train-00001-of-00002.parquet", bad, NER_FEATURES)
    with pytest.raises(DataError, match=r"train-00001-of-00002.parquet: row 1: expected a list"):
        _ner(splits["train"])
    (tmp_path / "train-00001-of-00002.parquet").unlink()
    with pytest.raises(DataError, match=r"train-00001-of-00002.parquet is missing"):
        _ner(splits["train"])


def test_classify_parquet_and_jsonl_label_names(tmp_path: Path) -> None:
    items = _cls(_parquet(tmp_path / "train.parquet", CLS_ROWS, CLS_FEATURES))
    assert [(e.text, e.label) for e in items] == [("a fine film", "positive"), ("dull", "negative")]
    items = _cls(_jsonl(tmp_path / "j" / "train.jsonl", CLS_ROWS, CLS_FEATURES))
    assert [e.label for e in items] == ["positive", "negative"]
    assert [e.label for e in _cls(_jsonl(tmp_path / "n.jsonl", CLS_ROWS))] == ["1", "0"]
    named = _cls(_jsonl(tmp_path / "m.jsonl", CLS_ROWS), labels=["neg", "pos"])
    assert [e.label for e in named] == ["pos", "neg"]


def test_classify_other_columns(tmp_path: Path) -> None:
    rows = [{"question": "who?", "coarse_label": 3}, {"question": "where?", "coarse_label": 4}]
    path = _parquet(tmp_path / "trec.parquet", rows, None)
    with pytest.raises(DataError, match=r"row 1: no column among \['text'.*data.input_field"):
        _cls(path)
    items = _cls(path, input_field="question", label_field="coarse_label")
    assert [(e.text, e.label) for e in items] == [("who?", "3"), ("where?", "4")]
    tsv = tmp_path / "a.tsv"
    tsv.write_text("q\ty\nwho?\tHUM\n", encoding="utf-8")
    assert _cls(tsv, input_field="q", label_field="y")[0].label == "HUM"
    with pytest.raises(DataError, match=r"row 1: no column 'nope' \(data.input_field\)"):
        _cls(path, input_field="nope")


def test_saved_to_disk_folders(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from occamtune.data.folder import find_splits

    features = datasets.Features.from_dict(NER_FEATURES)
    ds = datasets.Dataset.from_list(NER_ROWS, features=features)
    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "hf"))
    splits = find_splits(tmp_path / "hf")
    assert sorted(splits) == ["dev", "train"]
    assert _ner(splits["train"])[0].labels[:2] == ["B-PER", "I-PER"]
    cls = datasets.Dataset.from_list(CLS_ROWS, features=datasets.Features.from_dict(CLS_FEATURES))
    cls.save_to_disk(str(tmp_path / "cls"))
    assert [e.label for e in _cls(tmp_path / "cls")] == ["positive", "negative"]
    with pytest.raises(DataError, match="not one `datasets`' save_to_disk wrote"):
        _cls(tmp_path)


def test_missing_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_pyarrow(name: str, *args):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args)

    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setattr(importlib, "import_module", no_pyarrow)
    with pytest.raises(DataError, match=r"train.parquet: reading it needs `pyarrow`.*occamtune\[hf\]"):
        _cls(path)


def test_class_names_of_every_features_spelling() -> None:
    label = {"names": ["a", "b"], "_type": "ClassLabel"}
    assert class_names({"t": {"feature": label, "_type": "Sequence"}}, "t") == ["a", "b"]
    assert class_names({"t": [label]}, "t") == ["a", "b"]
    assert class_names({"t": label}, "t") == ["a", "b"]
    assert class_names({"t": {"dtype": "int64", "_type": "Value"}}, "t") is None
    assert class_names(None, "t") is None


def test_encoding_option(tmp_path: Path) -> None:
    p = tmp_path / "latin.conll"
    p.write_bytes("M\u00fcller B-PER\nsagt O\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 1: byte 0xfc is not UTF-8; .*data.encoding=latin-1"):
        _ner(p)
    assert _ner(p, encoding="latin-1")[0].words == ["M\u00fcller", "sagt"]
    t = tmp_path / "latin.txt"
    t.write_bytes("1 tr\u00e8s bien\n".encode("latin-1"))
    assert _cls(t, encoding="latin-1")[0].text == "tr\u00e8s bien"
    with pytest.raises(ConfigError, match=r"data.encoding='klingon' is not an encoding"):
        DataConfig(encoding="klingon")


def test_bom_and_crlf_are_read(tmp_path: Path) -> None:
    p = tmp_path / "bom.conll"
    p.write_bytes("\ufeffEU B-ORG\r\nsays O\r\n".encode())
    assert read_lines(p) == ["EU B-ORG", "says O"]
    assert _ner(p)[0].words == ["EU", "says"]
    j = tmp_path / "bom.jsonl"
    j.write_bytes('\ufeff{"text": "ok", "label": "a"}\r\n'.encode())
    assert _cls(j)[0].label == "a"


def test_unknown_dev_tag_names_the_row_and_token(tmp_path: Path) -> None:
    task = get_task("ner")
    train = task.read(_parquet(tmp_path / "train.parquet", NER_ROWS[1:], NER_FEATURES))
    dev = task.read(_parquet(tmp_path / "dev.parquet", NER_ROWS, NER_FEATURES))
    with pytest.raises(DataError, match=r"dev.parquet: row 1, token 5: label 'B-LOC' never occurs"):
        task.check_labels(dev, task.label_set(train))
