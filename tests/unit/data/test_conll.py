from pathlib import Path

import pytest

from occamtune.data import Sentence, read_conll, write_conll
from occamtune.errors import DataError


def _write(tmp_path: Path, text: str, name: str = "a.txt") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_fixture_with_docstart_and_iob2(conll_tiny: Path) -> None:
    ds = read_conll(conll_tiny / "train.txt")
    assert ds.scheme == "IOB2" and ds.path.endswith("train.txt")
    first = ds.sentences[0]
    assert first.words[:3] == ["John", "Smith", "will"] and first.line == 3
    assert first.labels[:3] == ["B-PER", "I-PER", "O"]
    assert all(len(s.words) == len(s.labels) for s in ds.sentences)


def test_tabs_spaces_and_two_columns(tmp_path: Path) -> None:
    tabs = read_conll(_write(tmp_path, "-DOCSTART-\tO\n\nNew York\tB-LOC\nis\tO\n\n\nPeter\tB-PER\n"))
    assert [s.words for s in tabs.sentences] == [["New York", "is"], ["Peter"]]
    assert tabs.sentences[1].line == 7
    spaces = read_conll(_write(tmp_path, "EU  B-ORG\r\nrejects O\r\n", "b.txt"))
    assert spaces.sentences[0].labels == ["B-ORG", "O"]


def test_label_column_option(tmp_path: Path) -> None:
    ds = read_conll(_write(tmp_path, "EU B-ORG NNP\nsays O VBZ\n"), label_column=1)
    assert ds.sentences[0].labels == ["B-ORG", "O"]
    with pytest.raises(DataError, match="line 1: label column 5"):
        read_conll(_write(tmp_path, "EU B-ORG NNP\n", "b.txt"), label_column=5)


def test_column_count_mismatch_names_line_and_counts(tmp_path: Path) -> None:
    p = _write(tmp_path, "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nGerman JJ B-MISC\n")
    with pytest.raises(DataError, match=r"a.txt, line 4: expected 4 columns .* found 3") as err:
        read_conll(p)
    assert err.value.line == 4


def test_bad_label_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3: label 'PER-B'"):
        read_conll(_write(tmp_path, "EU B-ORG\n\nPeter PER-B\n"))


def test_one_column_labelled_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 1: one column only"):
        read_conll(_write(tmp_path, "EU\nrejects\n"))


def test_unlabelled_one_word_per_line(tmp_path: Path) -> None:
    ds = read_conll(_write(tmp_path, "EU\nrejects\n\nPeter\n"), has_labels=False)
    assert [s.words for s in ds.sentences] == [["EU", "rejects"], ["Peter"]]
    assert all(s.labels is None for s in ds.sentences) and ds.scheme == "none"


def test_iob1_file_is_converted_and_scheme_recorded(tmp_path: Path) -> None:
    ds = read_conll(_write(tmp_path, "Peter I-PER\nBlackburn I-PER\nin O\nBonn I-LOC\n"
                                     "Paris B-LOC\n"))
    assert ds.scheme == "IOB1"
    assert ds.sentences[0].labels == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "no sentences"),
    ("-DOCSTART- -X- -X- O\n\n\n", "no sentences"),
])
def test_missing_and_empty_files(tmp_path: Path, content: str | None, message: str) -> None:
    p = tmp_path / "a.txt"
    if content is not None:
        p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_conll(p)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a folder"):
        read_conll(tmp_path)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "latin.txt"
    p.write_bytes("EU B-ORG\n\nM\u00fcller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.txt, line 3: byte 0xfc is not UTF-8") as err:
        read_conll(p)
    assert err.value.line == 3


def test_write_conll_is_readable_and_atomic(tmp_path: Path) -> None:
    sents = [Sentence(["EU", "rejects"], None, 1), Sentence(["Peter"], None, 4)]
    out = tmp_path / "pred.txt"
    write_conll(out, sents, [["B-ORG", "O"], ["B-PER"]])
    assert out.read_text(encoding="utf-8") == "EU B-ORG\nrejects O\n\nPeter B-PER\n\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.txt"]  # no temporary file left
    assert read_conll(out).sentences[1].labels == ["B-PER"]
    with pytest.raises(ValueError, match="1 labels for 2 words"):
        write_conll(out, sents[:1], [["O"]])


def test_a_tab_separated_line_is_reported_with_its_own_columns(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("EU\tNNP\tB-ORG\nrejects\tVBZ O\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected 3 columns") as err:
        read_conll(f)
    assert "['rejects', 'VBZ O']" in str(err.value)  # 2 columns, shown as 2 (not 'rejects VBZ O')
