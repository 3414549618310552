"""Raw text to words with character offsets, Penn-Treebank style (as CoNLL-2003 was tokenised)."""

from __future__ import annotations

import re

_FALLBACK = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word; `text[start:end] == word` always holds."""
    try:
        from nltk.tokenize import TreebankWordTokenizer

        spans = list(TreebankWordTokenizer().span_tokenize(text))
    except (ImportError, LookupError, ValueError):
        spans = [m.span() for m in _FALLBACK.finditer(text)]
    return [(text[s:e], s, e) for s, e in spans if text[s:e].strip()]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """One sentence per non-empty line (no sentence model is downloaded): (start, end) offsets."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip():
            out.append((pos, pos + len(line.rstrip("\r\n"))))
        pos += len(line)
    return out
