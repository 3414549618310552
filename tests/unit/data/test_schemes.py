from pathlib import Path

import pytest

from occamtune.data import check_labels, detect_scheme, to_iob2
from occamtune.errors import DataError


@pytest.mark.parametrize("tags, scheme, iob2", [
    (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB1", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    (["I-ORG", "I-PER", "B-PER", "I-PER"], "IOB1", ["B-ORG", "B-PER", "B-PER", "I-PER"]),
    (["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"], "BIOES",
     ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC", "B-LOC"]),
    (["B-PER", "I-PER", "O", "B-ORG"], "IOB2", ["B-PER", "I-PER", "O", "B-ORG"]),
    (["I-PER", "I-PER", "O", "I-LOC"], "IO", ["B-PER", "I-PER", "O", "B-LOC"]),
    (["O", "O"], "IOB2", ["O", "O"]),
])
def test_detect_and_convert(tags: list[str], scheme: str, iob2: list[str]) -> None:
    assert detect_scheme([["O"], tags]) == scheme
    assert to_iob2(tags, scheme) == iob2


def test_scheme_is_detected_over_the_whole_data_set() -> None:
    assert detect_scheme([["B-PER", "I-PER"], ["O", "I-LOC"]]) == "IOB1"
    assert detect_scheme([["B-PER"], ["E-LOC"]]) == "BIOES"


def test_malformed_labels_raise() -> None:
    for bad in ("PER-B", "B_PER", "B-", "X-PER", "o"):
        with pytest.raises(ValueError, match="neither 'O' nor PREFIX-TYPE"):
            detect_scheme([[bad]])
    with pytest.raises(ValueError, match="unknown tagging scheme"):
        to_iob2(["O"], "BILOU")


def test_check_labels_names_the_line() -> None:
    with pytest.raises(DataError, match=r"f.txt, line 12: label 'PER'") as err:
        check_labels([["O", "B-PER"], ["O", "O", "PER"]], [3, 10], Path("f.txt"))
    assert err.value.line == 12
    check_labels([["O", "B-PER"]], [1], "f.txt")  # well formed: no error


def test_the_scheme_note_names_the_line_that_decided() -> None:
    from occamtune.data.schemes import detect_scheme, scheme_note

    seqs = [["B-PER", "I-PER", "O"], ["O", "B-LOC"], ["I-ORG", "O"], ["B-PER", "O"]]
    lines = [1, 5, 8, 11]
    scheme = detect_scheme(seqs)
    note = scheme_note(seqs, lines, scheme)
    assert scheme == "IOB1" and "'I-ORG' at line 8 starts an entity" in note
    assert "mixes schemes: 3 entities start with B-" in note and "Check line 8" in note
    bioes = [["S-PER", "O"], ["B-LOC", "E-LOC"]]
    assert "'S-PER' at line 3" in scheme_note(bioes, [3, 6], detect_scheme(bioes))
    assert "mixes" not in scheme_note([["I-PER", "I-PER"]], [1], "IO")
    assert scheme_note([["B-PER", "I-PER"]], [1], "IOB2") == ""
