"""The readers on the real CoNLL-2003 and SST-2 files in ../shared/data (skipped when absent)."""

from pathlib import Path

import pytest

from occamtune.data import find_splits, read_conll, read_text

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def test_conll2003_train() -> None:
    ds = read_conll(_need(SHARED / "conll2003" / "train.txt"))
    assert len(ds.sentences) == 14041
    assert sum(len(s.words) for s in ds.sentences) == 203621
    assert ds.scheme == "IOB2"
    tags = {t for s in ds.sentences for t in s.labels}
    assert tags == {"O"} | {f"{p}-{t}" for p in "BI" for t in ("PER", "ORG", "LOC", "MISC")}
    assert ds.sentences[0].words[:2] == ["EU", "rejects"] and ds.sentences[0].line == 3


def test_conll2003_folder_splits() -> None:
    _need(SHARED / "conll2003" / "train.txt")
    assert {k: p.name for k, p in find_splits(SHARED / "conll2003").items()} == {
        "train": "train.txt", "dev": "valid.txt", "test": "test.txt"}


def test_sst2_train() -> None:
    ds = read_text(_need(SHARED / "sst2" / "train.txt"))
    assert len(ds.examples) == 6920
    assert {e.label for e in ds.examples} == {"0", "1"}
