"""Document context: neighbouring sentences of the same document around each sentence."""

from __future__ import annotations

import pytest

from occamtune.data.conll import read_conll
from occamtune.data.encode import encode_words
from tests.fixtures.tiny import tiny_tokenizer as make_tokenizer

SENTS = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"],
         ["Other", "doc"]]
LABELS = [[1, 0, 2, 0], [3, 4], [5, 0], [0, 0]]


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def _own(win) -> list[int]:
    return [t for t, w in zip(win.input_ids, win.word_index) if w >= 0]


def test_context_surrounds_a_sentence_within_its_document(tiny_tokenizer) -> None:
    plain = encode_words(SENTS, tiny_tokenizer, 48, label_ids=LABELS)
    ctx = encode_words(SENTS, tiny_tokenizer, 48, label_ids=LABELS, docs=[0, 0, 0, 1], context=8)
    for p, c in zip(plain, ctx):
        assert _own(p) == _own(c)  # the sentence's own sub-words, in order
        assert [lab for lab in c.label_ids if lab != -100] == [lab for lab in p.label_ids if lab != -100]
        assert c.input_ids[0] == p.input_ids[0] and c.input_ids[-1] == p.input_ids[-1]
        assert len(c.input_ids) <= 48 and len(c.input_ids) - len(p.input_ids) <= 8
        assert all(len(getattr(c, f)) == len(c.input_ids)
                   for f in ("word_index", "first", "label_ids", "shape_ids"))
    middle = ctx[1]
    pieces = lambda i: tiny_tokenizer(SENTS[i], is_split_into_words=True,
                                      add_special_tokens=False)["input_ids"]
    n = len(middle.input_ids) - len(plain[1].input_ids)
    assert n == 8
    left = middle.input_ids[1:1 + 4]
    assert left == pieces(0)[-4:]  # the nearest sub-words of the sentence before
    right = middle.input_ids[len(middle.input_ids) - 1 - 4:-1]
    assert right == pieces(2)[:4]
    assert ctx[3].input_ids == plain[3].input_ids  # alone in its document: nothing to add


def test_documents_are_counted_at_docstart(tmp_path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("-DOCSTART- O\n\nEU B-ORG\n\nPeter B-PER\n\n-DOCSTART- O\n\nBonn B-LOC\n")
    assert [s.doc for s in read_conll(f).sentences] == [0, 0, 1]
