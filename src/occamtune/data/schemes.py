"""Tagging schemes: detect IOB1 / IOB2 / BIOES and convert to IOB2."""

from __future__ import annotations

from collections.abc import Iterable


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; ("O", "") from "O". Raises ValueError on anything else."""
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not etype:
        raise ValueError(f"label {tag!r} is neither 'O' nor PREFIX-TYPE with PREFIX in B, I, E, S")
    return prefix, etype


def detect_scheme(sequences: Iterable[list[str]]) -> str:
    """The scheme of a data set's tags: BIOES if E-/S- occur; IOB1 if an entity starts with I-
    (after O or another type); IOB2 if B- occurs; IO otherwise."""
    has_b = starts_with_i = False
    for seq in sequences:
        prev = "O"
        for tag in seq:
            prefix, etype = split_tag(tag)
            if prefix in ("E", "S"):
                return "BIOES"
            has_b |= prefix == "B"
            if prefix == "I" and (prev == "O" or split_tag(prev)[1] != etype):
                starts_with_i = True
            prev = tag
    if starts_with_i:
        return "IOB1" if has_b else "IO"
    return "IOB2" if has_b else "IO"


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Convert one sentence's tags from `scheme` to IOB2."""
    out = []
    prev = "O"
    for tag in tags:
        prefix, etype = split_tag(tag)
        if prefix == "O":
            new = "O"
        elif prefix in ("B", "S"):
            new = f"B-{etype}"
        elif prefix == "E" or (prefix == "I" and scheme in ("BIOES", "IOB2")):
            new = f"I-{etype}" if prev != "O" and prev[2:] == etype else f"B-{etype}"
        else:  # IOB1 / IO: I- starts an entity unless it continues one of the same type
            new = f"I-{etype}" if prev != "O" and prev[2:] == etype else f"B-{etype}"
        out.append(new)
        prev = new
    return out
