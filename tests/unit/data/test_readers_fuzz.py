"""Property tests: any file content gives the readers a dataset or a DataError, never another
exception or a hang; files shaped like the formats (tabs, spaces, quotes, JSON) included."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occamtune.data.conll import read_conll
from occamtune.data.text import read_text
from occamtune.errors import DataError

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# pieces a real file is made of, so that the search reaches past the first check
TOKENS = st.sampled_from(["EU", "rejects", "B-ORG", "I-PER", "O", "B-", "-DOCSTART-", "NNP", "\t",
                          " ", "\n", "\r\n", "label", "text", ",", '"', "{", "}", ":", "[", "]",
                          '"text"', '"label"', "pos", "neg", "é", "\ud7ff", "\x00", "#"])
SHAPED = st.lists(TOKENS, max_size=60).map("".join)


def _read(reader, data: bytes, suffix: str, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(data)
        try:
            ds = reader(path, **kwargs)
        except DataError as exc:
            assert str(path) in str(exc)  # the error names the file
        else:
            assert ds.items


@FAST
@given(st.binary(max_size=300))
def test_conll_reader_on_any_bytes(data: bytes) -> None:
    _read(read_conll, data, ".txt")


@FAST
@given(SHAPED, st.integers(-4, 4), st.booleans())
def test_conll_reader_on_conll_like_text(text: str, label_column: int, has_labels: bool) -> None:
    _read(read_conll, text.encode("utf-8", "surrogatepass"), ".txt", label_column=label_column,
          has_labels=has_labels)


@FAST
@given(st.binary(max_size=300), st.sampled_from([".tsv", ".csv", ".jsonl", ".txt"]))
def test_text_reader_on_any_bytes(data: bytes, suffix: str) -> None:
    _read(read_text, data, suffix)


@FAST
@given(SHAPED, st.sampled_from([".tsv", ".csv", ".jsonl", ".txt"]))
def test_text_reader_on_text_like_files(text: str, suffix: str) -> None:
    _read(read_text, text.encode("utf-8", "surrogatepass"), suffix)
