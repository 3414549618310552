"""CoNLL column files: one token a line, columns split by tabs or by spaces, a blank line between
sentences, `-DOCSTART-` lines between documents, the label in the last column by default."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from occamtune.data.files import read_lines
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
        unit: None for one word a line (CoNLL); "line" or "row" for a table of one sentence a
            row, what each sentence's `line` counts.
        note: why that scheme, naming the first line that decided it (empty for IOB2).
    """

    sentences: list[Sentence]
    path: str
    scheme: str
    unit: str | None = None
    note: str = ""  # why the scheme was chosen, when the labels were converted

    @property
    def items(self) -> list[Sentence]:
        return self.sentences

    def with_items(self, items: list[Sentence]) -> TokenDataset:
        return TokenDataset(list(items), self.path, self.scheme, self.unit, self.note)


@dataclass
class _Draft:
    """A sentence being read: words, raw labels and the line of its first word."""

    line: int
    doc: int = 0
    words: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


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


def read_conll(path: str | Path, label_column: int = -1, has_labels: bool = True,
               encoding: str = "utf-8") -> TokenDataset:
    """Read a CoNLL file; labels are validated, their scheme detected and converted to IOB2.

    Args:
        path: the file. Any number of columns, tab or space separated; the word is the first.
        label_column: the column holding the label (default: the last).
        has_labels: False for unlabelled input (e.g. one word a line); labels are then None.
        encoding: the file's text encoding (`data.encoding`).

    Returns:
        The sentences with IOB2 labels, and the scheme the file used.

    Raises:
        DataError: missing or unreadable file, not in `encoding`, no sentences, a token line with a
            different number of columns, or a malformed label (naming its line).
    """
    path = Path(path)
    drafts = _read_drafts(path, read_lines(path, encoding), label_column, has_labels)
    if not drafts:
        raise DataError(path, "no sentences found (the file is empty or has only -DOCSTART- "
                              "and blank lines)")
    return token_dataset(path, [d.words for d in drafts],
                         [d.labels for d in drafts] if has_labels else None,
                         [d.line for d in drafts], [d.doc for d in drafts], label_column)


def token_dataset(path: str | Path, words: list[list[str]], tags: list[list[str]] | None,
                  lines: list[int], docs: list[int] | None = None,
                  label_column: int | None = -1, unit: str | None = None) -> TokenDataset:
    """Sentences from words and raw tags (None: unlabelled): tags validated, their scheme detected
    and converted to IOB2. Every NER reader ends here; a table's reader passes its `unit` and
    its rows' lines or numbers as `lines`.

    Raises:
        DataError: a malformed tag, naming the file and line (or row).
    """
    docs = docs or [0] * len(words)
    if tags is None:
        return TokenDataset([Sentence(w, None, n, d) for w, n, d in zip(words, lines, docs)],
                            str(path), "none", unit)
    check_labels(tags, lines, Path(path), label_column, unit)
    scheme = detect_scheme(tags)
    note = scheme_note(tags, lines, scheme, unit)
    return TokenDataset([Sentence(w, to_iob2(t, scheme), n, d)
                         for w, t, n, d in zip(words, tags, lines, docs)], str(path), scheme, unit,
                        note)


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
