from pathlib import Path

import pytest

from occamtune.data import read_text
from occamtune.errors import DataError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_label_text_fixture(sst_tiny: Path) -> None:
    ds = read_text(sst_tiny / "train.txt")
    assert ds.examples[0].label == "0" and ds.examples[0].text == "a bad movie ."
    assert [e.line for e in ds.examples[:3]] == [1, 2, 3]


def test_label_text_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    ds = read_text(_write(tmp_path, "a.txt", "pos  a good   film\n\nneg\tdull\n"))
    assert [(e.label, e.text, e.line) for e in ds.examples] == [
        ("pos", "a good   film", 1), ("neg", "dull", 3)]


def test_jsonl_text_or_sentence_keys(tmp_path: Path) -> None:
    ds = read_text(_write(tmp_path, "a.jsonl", '{"text": "good", "label": 1}\n\n'
                                                 '{"sentence": "bad", "label": "0"}\n'))
    assert [(e.text, e.label, e.line) for e in ds.examples] == [("good", "1", 1), ("bad", "0", 3)]
    unlabelled = read_text(_write(tmp_path, "u.jsonl", '{"text": "good"}\n'))
    assert unlabelled.examples[0].label is None


def test_tsv_and_csv_with_header(tmp_path: Path) -> None:
    tsv = read_text(_write(tmp_path, "a.tsv", "sentence\tlabel\ngood film\tpos\n\"quoted\tneg\n"))
    assert [(e.text, e.label, e.line) for e in tsv.examples] == [("good film", "pos", 2),
                                                                  ('"quoted', "neg", 3)]
    csv = read_text(_write(tmp_path, "a.csv", 'class,review\n1,"fine, really"\n0,"two\nlines"\n'
                                              "1,last\n"))
    assert [(e.text, e.label, e.line) for e in csv.examples] == [
        ("fine, really", "1", 2), ("two\nlines", "0", 3), ("last", "1", 5)]


def test_format_sniffed_without_extension(tmp_path: Path) -> None:
    assert read_text(_write(tmp_path, "a", '{"text": "x", "label": 1}\n')).examples[0].text == "x"
    assert read_text(_write(tmp_path, "b", "text\tlabel\nx\t1\n")).examples[0].label == "1"


@pytest.mark.parametrize("name, content, message", [
    ("b.jsonl", '{"text": "x", "label": 1}\n{oops\n', r"line 2: not valid JSON"),
    ("c.jsonl", '{"text": "x", "label": 1}\n{"txt": "y"}\n', r"line 2: no column among \[.text., .sentence., .review.\]"),
    ("d.jsonl", '["x", 1]\n', r"line 1: each line must be a JSON object"),
    ("d2.jsonl", '[\n{"text": "x"}\n]\n', r"line 1: not valid JSON.*one JSON object per line"),
    ("e.jsonl", '{"text": "x", "label": 1}\n{"text": "y"}\n', r"line 2: this example has no label"),
    ("f.txt", "1 fine\nlonely\n", r"line 2: expected 'LABEL TEXT'"),
    ("g.tsv", "words\tlabel\nx\t1\n", r"line 1: the header row .* has no text column"),
    ("h.tsv", "text\tlabel\nx\t1\ny\n", r"line 3: expected 2 fields"),
    ("i.jsonl", '{"text": "  ", "label": 1}\n', r"line 1: empty or missing text"),
    ("j.txt", "", "no examples found"),
    ("k.tsv", "text\tlabel\n", "no examples found"),
])
def test_errors_name_file_and_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        read_text(_write(tmp_path, name, content))
    assert err.value.path.endswith(name)


def test_missing_file_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_text(tmp_path / "nope.txt")
    p = tmp_path / "latin.txt"
    p.write_bytes(b"1 good\n0 caf\xe9 bad\n")
    with pytest.raises(DataError, match=r"line 2: byte 0xe9 is not UTF-8"):
        read_text(p)
