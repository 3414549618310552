"""Text classification files: JSONL, TSV/CSV with a header row, or `LABEL TEXT` lines.

The format follows the extension (`.jsonl`/`.json`, `.tsv`, `.csv`); any other file is sniffed:
a first line starting with `{` is JSONL, a header naming a text column is TSV/CSV, anything else
is `LABEL TEXT` lines (the label is the first whitespace-separated field, the text the rest).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from occamtune.data.conll import read_lines
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


class _Labels:
    """Checks that either every example of a file has a label or none has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.labelled: bool | None = None

    def check(self, label: str | None, line: int) -> str | None:
        has = label is not None
        if self.labelled is None:
            self.labelled = has
        elif has != self.labelled:
            state = "has no label but the lines before have one" if self.labelled else \
                "has a label but the lines before have none"
            raise DataError(self.path, f"this example {state}; label every example or none",
                            line=line)
        return label


def _example(path: Path, text: Any, label: str | None, line: int, labels: _Labels) -> TextExample:
    """A checked example: the text must be a non-empty string."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(path, f"empty or missing text ({text!r}); every example needs text",
                        line=line)
    return TextExample(text.strip(), labels.check(label, line), line)


def _json_object(path: Path, line: str, number: int) -> dict[str, Any]:
    """Parse one JSONL line into an object, or raise naming the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = "; write one JSON object per line (JSONL), not an array" if line.lstrip()[:1] == "[" \
            else ""
        raise DataError(path, f"not valid JSON: {exc.msg} at column {exc.colno}{hint}",
                        line=number) from exc
    if not isinstance(obj, dict):
        raise DataError(path, "each line must be a JSON object like "
                              '{"text": "...", "label": "..."}', line=number)
    return obj


def _from_jsonl(path: Path, lines: list[str]) -> list[TextExample]:
    out, labels = [], _Labels(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        obj = _json_object(path, line, number)
        tkey = next((k for k in TEXT_KEYS if k in obj), None)
        if tkey is None:
            raise DataError(path, f"no text key among {sorted(obj)}; use one of "
                                  f"{list(TEXT_KEYS)}", line=number)
        lkey = next((k for k in LABEL_KEYS if k in obj and obj[k] is not None), None)
        label = None if lkey is None else str(obj[lkey])
        out.append(_example(path, obj[tkey], label, number, labels))
    return out


def _columns(path: Path, header: list[str], line: int) -> tuple[int, int | None]:
    """Indices of the text column and (if any) the label column of a header row."""
    names = [h.strip().lower() for h in header]
    text = next((names.index(k) for k in TEXT_KEYS if k in names), None)
    if text is None:
        raise DataError(path, f"the header row {header} has no text column; name it one of "
                              f"{list(TEXT_KEYS)}", line=line)
    label = next((names.index(k) for k in LABEL_KEYS if k in names), None)
    return text, label


def _from_rows(path: Path, rows: list[tuple[int, list[str]]]) -> list[TextExample]:
    """Examples from (line, fields) rows, the first of which is the header."""
    if not rows:
        return []
    (head_line, header), out, labels = rows[0], [], _Labels(path)
    tcol, lcol = _columns(path, header, head_line)
    for number, row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(path, f"expected {len(header)} fields like the header, found "
                                  f"{len(row)}", line=number)
        label = row[lcol].strip() if lcol is not None else None
        if label == "":
            raise DataError(path, "empty label; give every example a label", line=number)
        out.append(_example(path, row[tcol], label, number, labels))
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


def _from_label_text(path: Path, lines: list[str]) -> list[TextExample]:
    out, labels = [], _Labels(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            raise DataError(path, f"expected 'LABEL TEXT', found only {line.strip()!r}; "
                                  "add the text after the label", line=number)
        out.append(_example(path, parts[1], parts[0], number, labels))
    return out


def _sniff(path: Path, lines: list[str]) -> str:
    """The format of a file: by extension, else by its first non-blank line."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".tsv", ".csv"):
        return {".json": "jsonl"}.get(suffix, suffix[1:])
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    if "\t" in first and any(f.strip().lower() in TEXT_KEYS for f in first.split("\t")):
        return "tsv"
    if any(f.strip().lower() in TEXT_KEYS for f in first.split(",")) and "," in first:
        return "csv"
    return "label_text"


_READERS: dict[str, Callable[[Path, list[str]], list[TextExample]]] = {
    "jsonl": _from_jsonl,
    "tsv": lambda p, lines: _from_rows(p, _tsv_rows(p, lines)),
    "csv": lambda p, lines: _from_rows(p, _csv_rows(p, lines)),
    "label_text": _from_label_text,
}


def read_text(path: str | Path) -> TextDataset:
    """Read a text classification file (format chosen by extension or content).

    Args:
        path: a `.jsonl` file (objects with "text" or "sentence", and "label"), a `.tsv`/`.csv`
            file with a header row (text column text/sentence/review, label column
            label/labels/class), or `LABEL TEXT` lines.

    Returns:
        The examples; labels are strings, or None when the file has none.

    Raises:
        DataError: missing file, not UTF-8, no examples, bad JSON, missing text, a line without
            text, or labels on some examples only (each naming the line).
    """
    path = Path(path)
    lines = read_lines(path)
    examples = _READERS[_sniff(path, lines)](path, lines)
    if not examples:
        raise DataError(path, "no examples found (the file is empty or has only a header)")
    return TextDataset(examples, str(path))
