"""Source -> target pairs for text generation: JSON lines (or any table) with a source and a
target column, or two parallel plain-text files (`train.de` / `train.en`) for translation.

A list of strings as the source (SciTLDR's abstract as its sentences) is joined with spaces; a
list as the target (or columns `summary1`, `summary2`, ... as DialogSum's test file has) gives
several references: training reads the first, scoring takes the best match over all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occamtune.data.files import read_lines
from occamtune.data.tables import Table, read_table
from occamtune.errors import DataError

SOURCE_COLUMNS = ("source", "src", "document", "dialogue", "article", "text", "input")
TARGET_COLUMNS = ("target", "tgt", "summary", "summaries", "references", "tldr", "output")
_NUMBERED = re.compile(r"(summary|target|reference)_?(\d+)$")


@dataclass
class Pair:
    """One example: the source text, its reference texts (empty when unlabelled) and the 1-based
    line it came from."""

    source: str
    references: list[str]
    line: int


@dataclass
class PairDataset:
    """The examples of one file (for parallel files: the source side's path)."""

    items: list[Pair]
    path: str

    def with_items(self, items: list[Pair]) -> PairDataset:
        return PairDataset(list(items), self.path)


def read_pairs(path: str | Path, encoding: str = "utf-8", source_field: str | None = None,
               target_field: str | None = None, has_labels: bool = True) -> PairDataset:
    """A JSON lines / Parquet / `datasets` file of source-target pairs, or (when `path` ends with
    `.{source_field}`, e.g. `train.de` with source_field "de" and target_field "en") a pair of
    parallel text files.

    Raises:
        DataError: naming the file and line: a missing column, an empty source, a target that
            is neither text nor a list of texts, parallel files of different lengths.
    """
    path = Path(path)
    if source_field and path.suffix == f".{source_field}":
        return _read_parallel(path, encoding, target_field, has_labels)
    table = read_table(path, encoding)
    items = [_pair(table, i, source_field, target_field, has_labels) for i in range(len(table.rows))]
    return PairDataset(items, str(path))


def _pair(table: Table, i: int, source_field: str | None, target_field: str | None,
          has_labels: bool) -> Pair:
    row = table.rows[i]
    src_col = table.column(i, source_field, SOURCE_COLUMNS, "data.input_field")
    source = _text(table, i, row[src_col], src_col)
    if not source.strip():
        raise table.error(i, f"empty source text in column {src_col!r}")
    refs: list[str] = []
    tgt_col = table.column(i, target_field, TARGET_COLUMNS, "data.label_field", required=False)
    if tgt_col is not None:
        value = row[tgt_col]
        refs = [_text(table, i, v, tgt_col) for v in value] if isinstance(value, list) \
            else [_text(table, i, value, tgt_col)]
    elif target_field is None:
        numbered = sorted((int(m.group(2)), k) for k in row if (m := _NUMBERED.match(k)))
        refs = [_text(table, i, row[k], k) for _, k in numbered]
    refs = [r for r in refs if r.strip()]
    if has_labels and not refs:
        raise table.error(i, f"no target text (a column among {list(TARGET_COLUMNS)} or "
                             f"summary1, summary2, ...); the columns: {sorted(row)}; name it "
                             "with data.label_field=COLUMN")
    return Pair(source, refs, table.numbers[i])


def _text(table: Table, i: int, value: Any, column: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(v.strip() for v in value)
    raise table.error(i, f"column {column!r} must hold a text or a list of texts, "
                         f"got {type(value).__name__}")


def _read_parallel(path: Path, encoding: str, target_field: str | None,
                   has_labels: bool) -> PairDataset:
    sources = read_lines(path, encoding)
    while sources and not sources[-1].strip():
        sources.pop()  # a trailing empty line ends the file, it is no example
    target = path.with_suffix(f".{target_field}") if target_field else None
    if target is None or not target.is_file():
        if has_labels:
            raise DataError(path, f"no target file beside it ({target or 'set data.label_field'}"
                                  "); parallel files pair `NAME.<input_field>` with "
                                  "`NAME.<label_field>`, e.g. data.input_field=de "
                                  "data.label_field=en")
        targets: list[str] = []
    else:
        targets = read_lines(target, encoding)
        while targets and not targets[-1].strip():
            targets.pop()
        if len(targets) != len(sources):
            raise DataError(target, f"has {len(targets)} lines but {path.name} has "
                                    f"{len(sources)}: line i of one must translate line i of "
                                    "the other")
    items = []
    for n, src in enumerate(sources, start=1):
        if not src.strip():
            raise DataError(path, "empty source line (every line is one sentence to translate)",
                            line=n)
        ref = targets[n - 1].strip() if targets else ""
        if targets and not ref:
            raise DataError(target, "empty target line", line=n)
        items.append(Pair(src.strip(), [ref] if ref else [], n))
    return PairDataset(items, str(path))
