"""Tagging schemes: detect IOB1 / IOB2 / BIOES (IOBES) / IO and convert labels to IOB2.

Labels are `O` or `PREFIX-TYPE` with PREFIX in B, I, E, S (e.g. `B-PER`, `I-ORG`, `S-LOC`).
`detect_scheme` and `to_iob2` raise `ValueError` on a malformed label; `check_labels` is the
file-facing check that raises a `DataError` naming the file and line of the first bad label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from occamtune.errors import DataError

SCHEMES = ("IOB2", "IOB1", "BIOES", "IO")
PREFIXES = ("B", "I", "E", "S")


def split_tag(tag: str) -> tuple[str, str]:
    """Split a label into prefix and entity type.

    Args:
        tag: a label such as "B-PER" or "O".

    Returns:
        ("B", "PER") for "B-PER"; ("O", "") for "O".

    Raises:
        ValueError: the label is neither "O" nor PREFIX-TYPE with PREFIX in B, I, E, S.
    """
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix not in PREFIXES or not etype:
        raise ValueError(f"label {tag!r} is neither 'O' nor PREFIX-TYPE with PREFIX in "
                         "B, I, E, S (e.g. B-PER, I-ORG)")
    return prefix, etype


def check_labels(label_sequences: Iterable[Sequence[str]], first_lines: Iterable[int],
                 path: str | Path, label_column: int | None = None,
                 unit: str | None = None) -> None:
    """Check that every label is well formed, naming the line of the first bad one.

    Args:
        label_sequences: the labels of each sentence.
        first_lines: 1-based file line of each sentence's first label; a sentence's labels are
            on consecutive lines.
        path: the file the labels come from, for the error message.
        label_column: the column the labels were read from, for a hint in the message.
        unit: None when each label is on a line of its own (CoNLL); else what `first_lines`
            count in a table of one sentence a row ("line" for JSON lines, "row" for Parquet):
            the message names it and the token.

    Raises:
        DataError: a label is malformed.
    """
    for labels, first in zip(label_sequences, first_lines):
        for offset, tag in enumerate(labels):
            try:
                split_tag(tag)
            except ValueError as exc:
                hint = f"; is the label in column {label_column}?" if label_column is not None else ""
                if unit is not None:
                    raise DataError(path, f"{unit} {first}, token {offset + 1}: {exc}") from exc
                raise DataError(path, f"{exc}{hint}", line=first + offset) from exc


def detect_scheme(label_sequences: Iterable[Sequence[str]]) -> str:
    """Detect the tagging scheme of a data set.

    BIOES if any E- or S- label occurs; otherwise IOB1 if some entity starts with I- (after O or
    after another type) and B- occurs; IO if entities start with I- and B- never occurs;
    IOB2 otherwise (including a data set without entities).

    Args:
        label_sequences: the labels of each sentence.

    Returns:
        One of "IOB2", "IOB1", "BIOES", "IO".

    Raises:
        ValueError: a label is malformed.
    """
    has_b = starts_with_i = False
    for labels in label_sequences:
        prev_type = ""
        for tag in labels:
            prefix, etype = split_tag(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            has_b |= prefix == "B"
            starts_with_i |= prefix == "I" and prev_type != etype
            prev_type = etype
    if starts_with_i:
        return "IOB1" if has_b else "IO"
    return "IOB2"


def scheme_note(label_sequences: Sequence[Sequence[str]], first_lines: Sequence[int],
                scheme: str, unit: str | None = None) -> str:
    """Why `detect_scheme` chose `scheme`, for the user: the first line that decided it, and
    whether the file mixes schemes (e.g. entities starting with B- and others with I-, as a stray
    tag in an IOB2 file does). Empty for IOB2 files that need no conversion.

    Args:
        label_sequences: the labels of each sentence.
        first_lines: 1-based file line of each sentence's first label (consecutive lines).
        scheme: what `detect_scheme` returned for them.
        unit: None for one label a line (CoNLL); "line" or "row" for a table of one sentence a
            row (`first_lines` then number the rows; a label is named by row and token).
    """
    first: dict[str, tuple[int, str]] = {}  # evidence kind -> (line, tag)
    counts = {"B": 0, "I": 0}
    for labels, line in zip(label_sequences, first_lines):
        prev_type = ""
        for offset, tag in enumerate(labels):
            prefix, etype = split_tag(tag)
            kind = ("ES" if prefix in ("E", "S") else
                    "I" if prefix == "I" and prev_type != etype else
                    "B" if prefix == "B" else "")
            if kind:
                where = f"line {line + offset}" if unit is None else f"{unit} {line}, token {offset + 1}"
                first.setdefault(kind, (where, tag))
                if kind in counts:
                    counts[kind] += 1
            prev_type = etype
    if scheme == "IOB2":
        return ""
    key = "ES" if scheme == "BIOES" else "I"
    where, tag = first[key]
    why = (f"{tag!r} at {where}" + (" starts an entity" if key == "I" else ""))
    note = f"uses {scheme} tags (first: {why}); converted to IOB2"
    if scheme == "IOB1" and counts["B"] > counts["I"]:
        note += (f"; the file mixes schemes: {counts['B']} entities start with B- (first at "
                 f"{first['B'][0]}), {counts['I']} with I-: a stray I- tag in an IOB2 file? "
                 f"Check {where}")
    return note


def to_iob2(labels: Sequence[str], scheme: str) -> list[str]:
    """Convert one sentence's labels from `scheme` to IOB2.

    B- and S- start an entity. I- and E- continue the entity before them when it has the same
    type and start a new one otherwise: that is the IOB1 / IO rule, and it also repairs a
    stray I- in IOB2 or BIOES data.

    Args:
        labels: one sentence's labels.
        scheme: the scheme they are in, one of SCHEMES.

    Returns:
        The IOB2 labels, as many as given.

    Raises:
        ValueError: unknown scheme or malformed label.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {scheme!r}; expected one of {SCHEMES}")
    out: list[str] = []
    prev_type = ""
    for tag in labels:
        prefix, etype = split_tag(tag)
        if prefix == "O":
            out.append("O")
        elif prefix in ("B", "S") or etype != prev_type:
            out.append(f"B-{etype}")
        else:
            out.append(f"I-{etype}")
        prev_type = etype
    return out
