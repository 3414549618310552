"""Text classification files: `LABEL TEXT` lines, TSV/CSV with a header, or JSONL."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from occamtune.data.conll import read_lines
from occamtune.errors import DataError

TEXT_KEYS = ("text", "sentence", "review")
LABEL_KEYS = ("label", "labels", "class")


@dataclass(frozen=True)
class TextExample:
    text: str
    label: str | None
    line: int


@dataclass
class TextDataset:
    examples: list[TextExample]
    path: str


def _pick(keys: list[str], wanted: tuple[str, ...], path: Path, what: str) -> str:
    for k in wanted:
        if k in keys:
            return k
    raise DataError(path, f"no {what} column/key among {keys}; name one of {list(wanted)}", line=1)


def _from_jsonl(path: Path, lines: list[str]) -> list[TextExample]:
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON: {exc.msg}", line=number) from exc
        if not isinstance(obj, dict):
            raise DataError(path, "each line must be a JSON object", line=number)
        tkey = next((k for k in TEXT_KEYS if k in obj), None)
        if tkey is None:
            raise DataError(path, f"no text key; use one of {list(TEXT_KEYS)}", line=number)
        lkey = next((k for k in LABEL_KEYS if k in obj), None)
        out.append(TextExample(str(obj[tkey]), None if lkey is None else str(obj[lkey]), number))
    return out


def _from_table(path: Path, lines: list[str], delimiter: str) -> list[TextExample]:
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip().lower() for h in rows[0]]
    tcol = header.index(_pick(header, TEXT_KEYS, path, "text"))
    lkey = next((k for k in LABEL_KEYS if k in header), None)
    lcol = header.index(lkey) if lkey else None
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(path, f"expected {len(header)} fields like the header, found {len(row)}",
                            line=number)
        out.append(TextExample(row[tcol], None if lcol is None else row[lcol].strip(), number))
    return out


def _from_label_text(path: Path, lines: list[str]) -> list[TextExample]:
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            raise DataError(path, f"expected 'LABEL TEXT', found only {line.strip()!r}", line=number)
        out.append(TextExample(parts[1], parts[0], number))
    return out


def read_text(path: str | Path) -> TextDataset:
    """Read a classification file, choosing the format by extension (.jsonl, .tsv, .csv) or else
    `LABEL TEXT` lines."""
    path = Path(path)
    lines = read_lines(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        examples = _from_jsonl(path, lines)
    elif suffix in (".tsv", ".csv") and lines:
        examples = _from_table(path, lines, "\t" if suffix == ".tsv" else ",")
    else:
        examples = _from_label_text(path, lines)
    if not examples:
        raise DataError(path, "no examples found (the file is empty)")
    return TextDataset(examples, str(path))
