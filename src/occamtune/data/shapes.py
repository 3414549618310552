"""Word shapes: the capitalisation and character classes that an uncased encoder cannot see."""

from __future__ import annotations

import re
from functools import lru_cache

SHAPES = ("pad", "lower", "capitalized", "allcaps", "mixed", "digits", "alnum", "punct", "other")
_DIGITS = re.compile(r"^[+\-]?[\d.,:/\-%]*\d[\d.,:/\-%]*$")  # 1996, 3.5, 1996-08-22, 1,000, 50%
_PUNCT = re.compile(r"^(?:[^\w\s]|_)+$")


@lru_cache(maxsize=1 << 16)
def word_shape(word: str) -> int:
    """The shape of a word, as an index into SHAPES; never 0 (`pad`) for a word.

    Examples: "paris" lower, "Paris" capitalized, "EU" allcaps, "iPhone" mixed, "1996" and
    "1996-08-22" and "3.5" digits, "A4" alnum, "." and "--" punct; words of letters without
    case (e.g. Chinese) and other strings are "other".

    Args:
        word: one word.

    Returns:
        An index into SHAPES, at least 1.
    """
    if _DIGITS.match(word):
        return SHAPES.index("digits")
    if _PUNCT.match(word):
        return SHAPES.index("punct")
    cased = [c for c in word if c.isalpha() and c.lower() != c.upper()]
    if not cased:
        return SHAPES.index("other")
    if any(c.isdigit() for c in word):
        return SHAPES.index("alnum")
    if all(c.islower() for c in cased):
        return SHAPES.index("lower")
    if all(c.isupper() for c in cased):
        return SHAPES.index("allcaps") if len(cased) > 1 else SHAPES.index("capitalized")
    if cased[0].isupper() and word[0] == cased[0] and all(c.islower() for c in cased[1:]):
        return SHAPES.index("capitalized")
    return SHAPES.index("mixed")
