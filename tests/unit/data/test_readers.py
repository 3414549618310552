from pathlib import Path

import pytest

from occamtune.data import (detect_scheme, find_splits, read_conll, read_text, split_off_dev,
                            split_words, to_iob2, word_shape, SHAPES)
from occamtune.errors import DataError


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_conll_tabs_docstart_and_any_column_count(tmp_path: Path) -> None:
    p = _write(tmp_path, "a.txt", "-DOCSTART-\tO\n\nEU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n")
    ds = read_conll(p)
    assert [s.words for s in ds.sentences] == [["EU", "rejects"], ["Peter"]]
    assert ds.sentences[1].line == 6 and ds.scheme == "IOB2"


def test_conll_wrong_column_count_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "a.txt", "EU NNP B-ORG\nrejects O\n")
    with pytest.raises(DataError, match=r"a.txt, line 2: expected 3 columns"):
        read_conll(p)


def test_conll_bad_label_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "a.txt", "EU NNP ORG-B\n")
    with pytest.raises(DataError, match="line 1"):
        read_conll(p)


@pytest.mark.parametrize("tags, scheme, iob2", [
    (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    (["S-PER", "O", "B-LOC", "E-LOC"], "BIOES", ["B-PER", "O", "B-LOC", "I-LOC"]),
    (["B-PER", "I-PER", "O"], "IOB2", ["B-PER", "I-PER", "O"]),
])
def test_schemes(tags, scheme, iob2) -> None:
    assert detect_scheme([tags]) == scheme
    assert to_iob2(tags, scheme) == iob2


def test_text_formats(tmp_path: Path) -> None:
    assert read_text(_write(tmp_path, "a.txt", "1 good film\n0 bad\n")).examples[1].label == "0"
    tsv = read_text(_write(tmp_path, "a.tsv", "sentence\tlabel\ngood film\tpos\n"))
    assert tsv.examples[0].text == "good film" and tsv.examples[0].line == 2
    jl = read_text(_write(tmp_path, "a.jsonl", '{"text": "x", "label": 1}\n'))
    assert jl.examples[0].label == "1"
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_text(_write(tmp_path, "b.jsonl", '{"text": "x", "label": 1}\n{oops\n'))
    with pytest.raises(DataError, match="line 1"):
        read_text(_write(tmp_path, "c.txt", "lonely\n"))


def test_find_splits_and_dev_split(tmp_path: Path) -> None:
    for name in ("eng.train", "eng.testa", "eng.testb"):
        _write(tmp_path, name, "x O\n")
    found = find_splits(tmp_path)
    assert (found["train"].name, found["dev"].name, found["test"].name) == ("eng.train", "eng.testa", "eng.testb")
    rest, dev = split_off_dev(list(range(100)), 0.1, seed=1)
    assert len(dev) == 10 and sorted(rest + dev) == list(range(100))
    assert split_off_dev(list(range(100)), 0.1, seed=1) == (rest, dev)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no training file"):
        find_splits(empty)


def test_shapes() -> None:
    got = {w: SHAPES[word_shape(w)] for w in ["paris", "Paris", "EU", "iPhone", "1996-08-22", "A4", "."]}
    assert got == {"paris": "lower", "Paris": "capitalized", "EU": "allcaps", "iPhone": "mixed",
                   "1996-08-22": "digits", "A4": "alnum", ".": "punct"}


def test_split_words_keeps_offsets() -> None:
    text = 'Merkel said "no" to the U.S. plan, twice.'
    words = split_words(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words][:3] == ["Merkel", "said", '"']
