import builtins
import itertools

import pytest

from occamtune.data import split_sentences, split_words
from occamtune.data import tokenize as tokenize_module


def test_treebank_words_keep_offsets() -> None:
    text = 'Merkel said "no" to the U.S. plan, didn\'t she?'
    words = split_words(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words] == ["Merkel", "said", '"', "no", '"', "to", "the", "U.S.",
                                        "plan", ",", "did", "n't", "she", "?"]


@pytest.mark.parametrize("text", ["``quoted'' text", "\u201cSmart\u201d \u2018quotes\u2019.",
                                  "tab\there\nnew line", "", "   ", "a -- b ... c (d)"])
def test_offsets_hold_for_tricky_text(text: str) -> None:
    words = split_words(text)
    assert all(text[s:e] == w and w.strip() for w, s, e in words)
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(words))  # in order, no overlap


def test_typographic_quotes_are_split_off() -> None:
    assert [w for w, _, _ in split_words("\u201cParis\u201d")] == ["\u201c", "Paris", "\u201d"]


def test_regex_fallback_without_nltk(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_nltk(name, *args, **kwargs):
        if name.startswith("nltk"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    tokenize_module._treebank_spans.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_nltk)
    try:
        text = "EU's re-imagining, (1996)."
        words = split_words(text)
    finally:
        monkeypatch.undo()
        tokenize_module._treebank_spans.cache_clear()
    assert [w for w, _, _ in words] == ["EU's", "re-imagining", ",", "(", "1996", ")", "."]
    assert all(text[s:e] == w for w, s, e in words)


def test_one_sentence_per_non_empty_line() -> None:
    text = "First one.\r\n\n  Second line  \nthird"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["First one.", "Second line", "third"]
    assert split_sentences("") == [] and split_sentences("\n \n") == []
