"""Raw text to words with character offsets, Penn-Treebank style (as CoNLL-2003 was tokenised).

Words come from NLTK's `TreebankWordTokenizer.span_tokenize`, which needs no downloaded data.
Without NLTK (or should it fail on a text), a regular expression keeps words with inner
hyphens, apostrophes and periods together and splits off every other punctuation mark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_FALLBACK = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")
_QUOTES = "\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2039\u203a"  # “ ” ‘ ’ « » „ ‚ ‹ ›


@lru_cache(maxsize=1)
def _treebank_spans() -> Callable[[str], list[tuple[int, int]]] | None:
    """NLTK's Treebank span tokenizer, or None when NLTK is not installed."""
    try:
        from nltk.tokenize import TreebankWordTokenizer
    except ImportError:
        return None
    tokenizer = TreebankWordTokenizer()
    return lambda text: list(tokenizer.span_tokenize(text))


def _fallback_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _FALLBACK.finditer(text)]


def _peel_quotes(start: int, end: int, text: str) -> list[tuple[int, int]]:
    """Split typographic quotes (which Treebank leaves attached) off both ends of a span."""
    head, tail = start, end
    while head < tail and text[head] in _QUOTES:
        head += 1
    while tail > head and text[tail - 1] in _QUOTES:
        tail -= 1
    spans = [(i, i + 1) for i in range(start, head)]
    if head < tail:
        spans.append((head, tail))
    return spans + [(i, i + 1) for i in range(tail, end)]


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into words with their character offsets.

    Args:
        text: raw text.

    Returns:
        (word, start, end) for each word, in order; `text[start:end] == word` always holds
        (the word is taken from the text, so Treebank's quote rewriting never leaks out).
    """
    treebank = _treebank_spans()
    try:
        spans = treebank(text) if treebank is not None else _fallback_spans(text)
    except (LookupError, ValueError):  # Treebank cannot align some rare inputs
        spans = _fallback_spans(text)
    out: list[tuple[str, int, int]] = []
    for start, end in spans:
        for s, e in _peel_quotes(start, end, text):
            if text[s:e].strip():
                out.append((text[s:e], s, e))
    return out


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Split raw text into sentences: one sentence per non-empty line.

    No sentence-splitting model is used (nothing is downloaded); put one sentence a line for
    the best results. Offsets exclude the line's leading and trailing whitespace.

    Args:
        text: raw text.

    Returns:
        (start, end) character offsets of each sentence.
    """
    out: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            start = pos + line.index(stripped[0])
            out.append((start, start + len(stripped)))
        pos += len(line) + 1
    return out


def is_uncased(tokenizer: Any) -> bool:
    """True when the tokenizer lower-cases its input (so capitalisation is lost)."""
    probe = tokenizer.tokenize("Paris")
    return bool(probe) and probe == tokenizer.tokenize("paris")
