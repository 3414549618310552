"""CoNLL column files: one token a line, columns split by tabs or by spaces, a blank line between
sentences, `-DOCSTART-` lines between documents, the label in the last column by default."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from occamtune.data.schemes import check_labels, detect_scheme, scheme_note, to_iob2
from occamtune.errors import DataError


@dataclass(frozen=True)
class Sentence:
    """One sentence of a CoNLL file.

    Attributes:
        words: the words (first column).
        labels: one IOB2 label per word, or None for unlabelled input.
        line: 1-based file line of the first word.
        doc: index of its document (a new one starts at each `-DOCSTART-` line).
    """

    words: list[str]
    labels: list[str] | None
    line: int
    doc: int = 0


@dataclass
class TokenDataset:
    """The sentences of one file, labels converted to IOB2.

    Attributes:
        sentences: the sentences, in file order.
        path: the file they were read from.
        scheme: the tagging scheme detected in the file before conversion ("none" unlabelled).
        note: why that scheme, naming the first line that decided it (empty for IOB2).
    """

    sentences: list[Sentence]
    path: str
    scheme: str
    note: str = ""  # why the scheme was chosen, when the labels were converted

    @property
    def items(self) -> list[Sentence]:
        return self.sentences

    def with_items(self, items: list[Sentence]) -> TokenDataset:
        return TokenDataset(list(items), self.path, self.scheme, self.note)


@dataclass
class _Draft:
    """A sentence being read: words, raw labels and the line of its first word."""

    line: int
    doc: int = 0
    words: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file as lines, with errors that name the file.

    Lines are split on "\\n" only (a trailing "\\r" is dropped), so line numbers match what an
    editor shows; a UTF-8 byte-order mark is ignored.

    Args:
        path: the file.

    Returns:
        The lines, without line ends.

    Raises:
        DataError: the file is missing, is a folder, cannot be read, or is not UTF-8 (the
            message names the line of the first bad byte).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist; check the path")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"byte 0x{raw[exc.start]:02x} is not UTF-8; re-encode the file as "
                              "UTF-8 (e.g. iconv -f latin1 -t utf-8)", line=line) from exc
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]


def split_columns(line: str) -> list[str]:
    """Split a token line on tabs if it has one, else on runs of whitespace."""
    line = line.strip()
    return line.split("\t") if "\t" in line else line.split()


def _check_columns(path: Path, number: int, cols: list[str], n_cols: int | None,
                   label_column: int, has_labels: bool) -> int:
    """The file's column count, fixed by its first token line; raises on a line that differs."""
    if n_cols is not None:
        if len(cols) != n_cols:
            # the columns as split, not re-joined: the columns of a tab-separated line may
            # hold spaces, and joined by spaces they would show another count
            raise DataError(path, f"expected {n_cols} columns like the token lines before, found "
                                  f"{len(cols)}: {cols!r}; every token line needs the "
                                  "same columns", line=number)
        return n_cols
    if has_labels and len(cols) < 2:
        raise DataError(path, f"one column only ({cols[0]!r}); a labelled CoNLL file needs the "
                              "word first and the label in another column", line=number)
    if has_labels and (label_column >= len(cols) or label_column < -len(cols)
                       or label_column % len(cols) == 0):
        raise DataError(path, f"label column {label_column} is missing or is the word column in "
                              f"a line of {len(cols)} columns; set the label column",
                        line=number)
    return len(cols)


def _read_drafts(path: Path, lines: list[str], label_column: int,
                 has_labels: bool) -> list[_Draft]:
    """Group token lines into sentences, checking that every token line has the same columns."""
    drafts: list[_Draft] = []
    current: _Draft | None = None
    n_cols: int | None = None
    doc = 0
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("-DOCSTART-"):
            doc += 1 if drafts else 0
            current = None
            continue
        if not line.strip():
            current = None
            continue
        cols = split_columns(line)
        n_cols = _check_columns(path, number, cols, n_cols, label_column, has_labels)
        if current is None:
            current = _Draft(number, doc)
            drafts.append(current)
        current.words.append(cols[0])
        if has_labels:
            current.labels.append(cols[label_column])
    return drafts


def read_conll(path: str | Path, label_column: int = -1, has_labels: bool = True) -> TokenDataset:
    """Read a CoNLL file; labels are validated, their scheme detected and converted to IOB2.

    Args:
        path: the file. Any number of columns, tab or space separated; the word is the first.
        label_column: the column holding the label (default: the last).
        has_labels: False for unlabelled input (e.g. one word a line); labels are then None.

    Returns:
        The sentences with IOB2 labels, and the scheme the file used.

    Raises:
        DataError: missing or unreadable file, not UTF-8, no sentences, a token line with a
            different number of columns, or a malformed label (naming its line).
    """
    path = Path(path)
    drafts = _read_drafts(path, read_lines(path), label_column, has_labels)
    if not drafts:
        raise DataError(path, "no sentences found (the file is empty or has only -DOCSTART- "
                              "and blank lines)")
    if not has_labels:
        return TokenDataset([Sentence(d.words, None, d.line, d.doc) for d in drafts], str(path), "none")
    check_labels([d.labels for d in drafts], [d.line for d in drafts], path, label_column)
    scheme = detect_scheme(d.labels for d in drafts)
    note = scheme_note([d.labels for d in drafts], [d.line for d in drafts], scheme)
    sentences = [Sentence(d.words, to_iob2(d.labels, scheme), d.line, d.doc) for d in drafts]
    return TokenDataset(sentences, str(path), scheme, note)


def write_conll(path: str | Path, sentences: list[Sentence],
                predictions: list[list[str]]) -> None:
    """Write `word label` lines with the predicted labels, a blank line after each sentence.

    The file is written to a temporary file in the same folder, then moved into place, so a
    reader never sees half a file.

    Args:
        path: the file to write.
        sentences: the sentences (their words are written).
        predictions: one predicted label per word of each sentence.

    Raises:
        ValueError: predictions do not match the sentences in number or length.
    """
    if len(sentences) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(sentences)} sentences")
    lines: list[str] = []
    for i, (sent, tags) in enumerate(zip(sentences, predictions)):
        if len(tags) != len(sent.words):
            raise ValueError(f"sentence {i}: {len(tags)} labels for {len(sent.words)} words")
        lines += [f"{w} {t}" for w, t in zip(sent.words, tags)] + [""]
    _atomic_write(Path(path), "\n".join(lines) + "\n" if lines else "")


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
