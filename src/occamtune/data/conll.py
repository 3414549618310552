"""CoNLL column files: one token a line, columns split by tabs or spaces, blank lines between
sentences, `-DOCSTART-` lines between documents, the label in the last column by default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from occamtune.data.schemes import detect_scheme, split_tag, to_iob2
from occamtune.errors import DataError


@dataclass(frozen=True)
class Sentence:
    """Words, their labels (None for unlabelled input) and the file line of the first word."""

    words: list[str]
    labels: list[str] | None
    line: int


@dataclass
class TokenDataset:
    """The sentences of one file, labels converted to IOB2; `scheme` is what the file used."""

    sentences: list[Sentence]
    path: str
    scheme: str


def read_lines(path: str | Path) -> list[str]:
    """A file's lines, with errors that name the file (and the line of a bad byte)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist; check the path")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"byte 0x{raw[exc.start]:02x} is not UTF-8; re-encode the file "
                              "(e.g. iconv -f latin1 -t utf-8)", line=line) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()


def _columns(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def _sentences(path: Path, lines: list[str], label_column: int, has_labels: bool) -> list[tuple]:
    """(words, raw labels, first line, label lines) per sentence; checks the column count."""
    out, words, tags, lines_of, n_cols = [], [], [], [], None
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if words:
                out.append((words, tags if has_labels else None, lines_of[0], lines_of))
            words, tags, lines_of = [], [], []
            continue
        cols = _columns(line.strip())
        if n_cols is None:
            n_cols = len(cols)
            if has_labels and n_cols < 2:
                raise DataError(path, f"one column only ({line.strip()!r}); a labelled CoNLL file "
                                      "needs the word first and the label in another column", line=number)
        elif len(cols) != n_cols:
            raise DataError(path, f"expected {n_cols} columns like the lines before, found {len(cols)}: "
                                  f"{line.strip()!r}", line=number)
        words.append(cols[0])
        if has_labels:
            tags.append(cols[label_column])
        lines_of.append(number)
    return out


def read_conll(path: str | Path, label_column: int = -1, has_labels: bool = True) -> TokenDataset:
    """Read a CoNLL file; labels are validated, their scheme detected and converted to IOB2."""
    raw = _sentences(Path(path), read_lines(path), label_column, has_labels)
    if not raw:
        raise DataError(path, "no sentences found (the file is empty or only has -DOCSTART- lines)")
    if not has_labels:
        return TokenDataset([Sentence(w, None, first) for w, _, first, _ in raw], str(path), "none")
    for _, tags, _, lines_of in raw:
        for tag, number in zip(tags, lines_of):
            try:
                split_tag(tag)
            except ValueError as exc:
                raise DataError(path, f"{exc}; is the label in column {label_column}?", line=number) from exc
    scheme = detect_scheme(tags for _, tags, _, _ in raw)
    sentences = [Sentence(w, to_iob2(t, scheme), first) for w, t, first, _ in raw]
    return TokenDataset(sentences, str(path), scheme)


def write_conll(path: str | Path, sentences: list[Sentence], predictions: list[list[str]]) -> None:
    """Write `word label` lines (predicted labels), a blank line between sentences, atomically."""
    path = Path(path)
    lines = []
    for sent, tags in zip(sentences, predictions):
        lines += [f"{w} {t}" for w, t in zip(sent.words, tags)] + [""]
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
