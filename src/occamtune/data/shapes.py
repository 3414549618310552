"""Word shapes: capitalisation and character classes that an uncased encoder cannot see."""

from __future__ import annotations

import re

SHAPES = ("pad", "lower", "capitalized", "allcaps", "mixed", "digits", "alnum", "punct", "other")
_DIGITS = re.compile(r"^[\d.,:/\-]*\d[\d.,:/\-]*$")
_PUNCT = re.compile(r"^[^\w\s]+$")


def word_shape(word: str) -> int:
    """Index into SHAPES of a word's shape; never 0 (`pad`) for a real word."""
    if _DIGITS.match(word):
        return SHAPES.index("digits")
    if _PUNCT.match(word):
        return SHAPES.index("punct")
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return SHAPES.index("other")
    if any(c.isdigit() for c in word):
        return SHAPES.index("alnum")
    if all(c.islower() for c in letters):
        return SHAPES.index("lower")
    if all(c.isupper() for c in letters):
        return SHAPES.index("allcaps") if len(letters) > 1 else SHAPES.index("capitalized")
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return SHAPES.index("capitalized")
    return SHAPES.index("mixed")
