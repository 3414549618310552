"""Text classification files: tables (JSON lines, Parquet, a `datasets` folder), TSV/CSV with a
header row, or `LABEL TEXT` lines.

The format follows the extension (`.jsonl`/`.json`, `.parquet`, `.tsv`, `.csv`) or a folder; any
other file is sniffed: a first line starting with `{` is JSON lines, a header naming a text column
is TSV/CSV, anything else is `LABEL TEXT` lines (the label is the first whitespace-separated
field, the text the rest).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occamtune.data.files import read_lines
from occamtune.data.tables import Table, json_table, read_table
from occamtune.errors import DataError

TEXT_KEYS = ("text", "sentence", "review")
LABEL_KEYS = ("label", "labels", "class")


@dataclass(frozen=True)
class TextExample:
    """One example: its text, its label (None when unlabelled) and its 1-based file line."""

    text: str
    label: str | None
    line: int


@dataclass
class TextDataset:
    """The examples of one file, in file order."""

    examples: list[TextExample]
    path: str

    @property
    def items(self) -> list[TextExample]:
        return self.examples

    def with_items(self, items: list[TextExample]) -> TextDataset:
        return TextDataset(list(items), self.path)


Fail = Callable[[str], DataError]  # a message -> the error naming the file and line (or row)


def _at(path: Path, line: int) -> Fail:
    return lambda message: DataError(path, message, line=line)


class _Labels:
    """Checks that either every example of a file has a label or none has."""

    def __init__(self) -> None:
        self.labelled: bool | None = None

    def check(self, label: str | None, fail: Fail) -> str | None:
        has = label is not None
        if self.labelled is None:
            self.labelled = has
        elif has != self.labelled:
            state = "has no label but the examples before have one" if self.labelled else \
                "has a label but the examples before have none"
            raise fail(f"this example {state}; label every example or none")
        return label


def _example(text: Any, label: str | None, line: int, labels: _Labels, fail: Fail) -> TextExample:
    """A checked example: the text must be a non-empty string."""
    if not isinstance(text, str) or not text.strip():
        raise fail(f"empty or missing text ({text!r}); every example needs text")
    return TextExample(text.strip(), labels.check(label, fail), line)


@dataclass(frozen=True)
class Fields:
    """Which columns hold the text and the label, and the names of integer labels (the
    `data.input_field`, `data.label_field` and `data.labels` options); None: the usual ones."""

    input_field: str | None = None
    label_field: str | None = None
    labels: list[str] | None = None


def _from_table(table: Table, fields: Fields) -> list[TextExample]:
    """Examples from a table's rows: the text column, and the label column when there is one."""
    out, labels = [], _Labels()
    for i, (row, number) in enumerate(zip(table.rows, table.numbers)):
        tkey = table.column(i, fields.input_field, TEXT_KEYS, "data.input_field")
        lkey = table.column(i, fields.label_field, LABEL_KEYS, "data.label_field", required=False)
        value = row.get(lkey) if lkey is not None else None
        names = table.label_names(lkey, fields.labels) if value is not None else None
        label = None if value is None else table.label(i, value, names, needs_names=False)
        out.append(_example(row.get(tkey), label, number, labels,
                            lambda message, i=i: table.error(i, message)))
    return out


def _columns(path: Path, header: list[str], line: int, fields: Fields) -> tuple[int, int | None]:
    """Indices of the text column and (if any) the label column of a header row."""
    names = [h.strip().lower() for h in header]

    def find(given: str | None, usual: tuple[str, ...], option: str) -> int | None:
        if given is not None and given.lower() not in names:
            raise DataError(path, f"the header row {header} has no column {given!r} ({option})",
                            line=line)
        return next((names.index(k) for k in ([given.lower()] if given else usual) if k in names),
                    None)

    text = find(fields.input_field, TEXT_KEYS, "data.input_field")
    if text is None:
        raise DataError(path, f"the header row {header} has no text column; name it one of "
                              f"{list(TEXT_KEYS)} or set data.input_field", line=line)
    return text, find(fields.label_field, LABEL_KEYS, "data.label_field")


def _from_rows(path: Path, rows: list[tuple[int, list[str]]], fields: Fields) -> list[TextExample]:
    """Examples from (line, fields) rows, the first of which is the header."""
    if not rows:
        return []
    (head_line, header), out, labels = rows[0], [], _Labels()
    tcol, lcol = _columns(path, header, head_line, fields)
    for number, row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(path, f"expected {len(header)} fields like the header, found "
                                  f"{len(row)}", line=number)
        label = row[lcol].strip() if lcol is not None else None
        if label == "":
            raise DataError(path, "empty label; give every example a label", line=number)
        out.append(_example(row[tcol], label, number, labels, _at(path, number)))
    return out


def _tsv_rows(path: Path, lines: list[str]) -> list[tuple[int, list[str]]]:
    """Tab-separated fields of each line (no quoting, as in GLUE files)."""
    return [(n, ln.split("\t")) for n, ln in enumerate(lines, start=1) if ln.strip()]


def _csv_rows(path: Path, lines: list[str]) -> list[tuple[int, list[str]]]:
    """CSV records with the line each starts on (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO("\n".join(lines)))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            if row:
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}", line=start) from exc
    return rows


def _from_label_text(path: Path, lines: list[str], fields: Fields) -> list[TextExample]:
    out, labels = [], _Labels()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            raise DataError(path, f"expected 'LABEL TEXT', found only {line.strip()!r}; "
                                  "add the text after the label", line=number)
        out.append(_example(parts[1], parts[0], number, labels, _at(path, number)))
    return out


def _sniff(path: Path, lines: list[str]) -> str:
    """The format of a file: by extension, else by its first non-blank line."""
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        return suffix[1:]
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if "\t" in first and any(f.strip().lower() in TEXT_KEYS for f in first.split("\t")):
        return "tsv"
    if any(f.strip().lower() in TEXT_KEYS for f in first.split(",")) and "," in first:
        return "csv"
    return "label_text"


_READERS: dict[str, Callable[[Path, list[str], Fields], list[TextExample]]] = {
    "jsonl": lambda p, lines, f: _from_table(json_table(p, lines), f),
    "tsv": lambda p, lines, f: _from_rows(p, _tsv_rows(p, lines), f),
    "csv": lambda p, lines, f: _from_rows(p, _csv_rows(p, lines), f),
    "label_text": _from_label_text,
}


def read_text(path: str | Path, encoding: str = "utf-8", fields: Fields | None = None) -> TextDataset:
    """Read a text classification file (format chosen by extension or content).

    Args:
        path: a table (`.jsonl`/`.json` objects, `.parquet`, a `datasets` save_to_disk folder)
            with a text column (text/sentence/review) and a label column (label/labels/class;
            integers are named by the data's ClassLabel metadata or `fields.labels`), a
            `.tsv`/`.csv` file with a header row naming the same columns, or `LABEL TEXT` lines.
        encoding: the text encoding of a text file (`data.encoding`).
        fields: other column names and label names (`data.input_field`, ...).

    Returns:
        The examples; labels are strings, or None when the file has none.

    Raises:
        DataError: missing file, not in `encoding`, no examples, bad JSON, missing text, a line
            without text, or labels on some examples only (each naming the line or row).
    """
    path, fields = Path(path), fields or Fields()
    if path.suffix.lower() == ".parquet" or path.is_dir():
        examples = _from_table(read_table(path, encoding), fields)
    else:
        lines = read_lines(path, encoding)
        examples = _READERS[_sniff(path, lines)](path, lines, fields)
    if not examples:
        raise DataError(path, "no examples found (the file is empty or has only a header)")
    return TextDataset(examples, str(path))
