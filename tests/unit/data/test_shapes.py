import pytest

from occamtune.data import SHAPES, word_shape


@pytest.mark.parametrize("word, shape", [
    ("paris", "lower"), ("Paris", "capitalized"), ("I", "capitalized"), ("Ölfeld", "capitalized"),
    ("EU", "allcaps"), ("U.S.", "allcaps"), ("iPhone", "mixed"), ("McDonald", "mixed"),
    ("1996", "digits"), ("1996-08-22", "digits"), ("3.5", "digits"), ("1,000", "digits"),
    ("A4", "alnum"), ("G7s", "alnum"), (".", "punct"), ("--", "punct"), ("(", "punct"),
    ("東京", "other"),
])
def test_word_shapes(word: str, shape: str) -> None:
    assert SHAPES[word_shape(word)] == shape


def test_never_pad_for_a_word() -> None:
    assert SHAPES[0] == "pad"
    assert all(word_shape(w) > 0 for w in ["", " ", "_", "\u200b", "a", "Z", "9", "#"])
