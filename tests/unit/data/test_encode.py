import itertools

import pytest
import torch

from occamtune.data import (
    SHAPES,
    Collator,
    encode_texts,
    encode_words,
    length_grouped_order,
    window_count_report,
)
from tests.fixtures.tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _check_windows(wins, words, labels, max_length) -> None:
    owned = [w for win in wins for w in range(*win.owned)]
    assert owned == list(range(len(words)))  # every word owned once, in order
    for win in wins:
        n = len(win.input_ids)
        assert n <= max_length
        assert n == len(win.word_index) == len(win.first) == len(win.label_ids) == len(win.shape_ids)
        assert win.words[0] <= win.owned[0] <= win.owned[1] <= win.words[1]
        covered = sorted({w for w in win.word_index if w >= 0})
        assert covered == list(range(*win.words))  # whole words only
        for pos, (w, f) in enumerate(zip(win.word_index, win.first)):
            expected = labels[w] if (f and labels is not None) else -100
            assert win.label_ids[pos] == expected
            assert (win.shape_ids[pos] == 0) == (w == -1)
    firsts = {w for win in wins for w, f in zip(win.word_index, win.first) if f}
    assert firsts == set(range(len(words)))


@pytest.mark.parametrize("stride", [0, 4, 16, 32, 200])
def test_long_sentence_windows_own_every_word_once(tok, stride: int) -> None:
    words = ["Paris", "visited", "London", "Smithsonian", ","] * 120  # 600 words
    labels = [i % 3 for i in range(len(words))]
    wins = encode_words([words], tok, max_length=64, label_ids=[labels], stride=stride)
    assert len(wins) > 5
    _check_windows(wins, words, labels, 64)
    assert wins[0].input_ids[0] == tok.cls_token_id and wins[0].input_ids[-1] == tok.sep_token_id


def test_windows_overlap_by_about_stride(tok) -> None:
    words = ["paris"] * 300  # one sub-word each
    wins = encode_words([words], tok, max_length=34, stride=8)
    for a, b in itertools.pairwise(wins):
        assert a.words[1] - b.words[0] == 8  # 8 one-piece words shared
    assert window_count_report(wins) == {"sentences": 1, "windows": len(wins), "sentences_split": 1}


def test_short_sentences_give_one_window_each(tok) -> None:
    sents = [["John", "met", "Mary"], ["Paris"], ["the", "bank"]]
    wins = encode_words(sents, tok, max_length=32)
    assert [w.sentence for w in wins] == [0, 1, 2]
    assert [w.owned for w in wins] == [(0, 3), (0, 1), (0, 2)]
    assert all(all(x == -100 for x in w.label_ids) for w in wins)  # unlabelled
    assert tok.convert_ids_to_tokens(wins[0].input_ids) == ["[CLS]", "john", "met", "mary", "[SEP]"]
    assert [SHAPES[s] for s in wins[0].shape_ids] == ["pad", "capitalized", "lower", "capitalized",
                                                       "pad"]
    assert window_count_report(wins) == {"sentences": 3, "windows": 3, "sentences_split": 0}


def test_word_without_pieces_becomes_unk_and_huge_word_is_cut(tok) -> None:
    wins = encode_words([["\u200b", "abcdefghij" * 3]], tok, max_length=16, label_ids=[[1, 2]])
    assert len(wins) == 2  # the huge word fills a window of its own; nothing is dropped
    assert wins[0].input_ids[1] == tok.unk_token_id and wins[0].label_ids[1] == 1
    assert all(len(w.input_ids) <= 16 for w in wins)
    assert len(wins[1].input_ids) == 16 and wins[1].label_ids[1] == 2  # cut to 14 pieces, labelled
    _check_windows(wins, ["\u200b", "x"], [1, 2], 16)


def test_bad_arguments(tok) -> None:
    with pytest.raises(ValueError, match="no room"):
        encode_words([["a"]], tok, max_length=2)
    with pytest.raises(ValueError, match="1 labels for 2 words"):
        encode_words([["a", "b"]], tok, max_length=16, label_ids=[[0]])


def test_collator_pads_windows(tok) -> None:
    wins = encode_words([["Paris"], ["John", "met", "Mary"]], tok, max_length=32,
                        label_ids=[[1], [2, 0, 2]])
    batch = Collator(tok)(wins)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["shape_ids"].shape == (2, 5)
    assert batch["first"].dtype == torch.bool and batch["first"].sum() == 4
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["input_ids"][0, 3:].tolist() == [tok.pad_token_id] * 2
    assert batch["labels"][0].tolist() == [-100, 1, -100, -100, -100]
    assert batch["shape_ids"][0, 3:].tolist() == [0, 0]
    assert batch["token_type_ids"].sum() == 0
    assert Collator(pad_id=7)(wins)["input_ids"][0, -1] == 7


def test_encode_texts_and_collate_dicts(tok) -> None:
    feats = encode_texts(["a good film", "bad " * 100], tok, max_length=16)
    assert len(feats[0]["input_ids"]) == 5 and len(feats[1]["input_ids"]) == 16
    assert feats[0]["attention_mask"] == [1] * 5
    for i, f in enumerate(feats):
        f["label"] = i
    batch = Collator(tok)(feats)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 16)
    assert batch["labels"].tolist() == [0, 1] and batch["labels"].dtype == torch.long
    assert batch["attention_mask"][0].sum() == 5
    assert "labels" not in Collator(tok)([{"input_ids": [2, 3]}])


def test_length_grouped_order_is_a_seeded_partition() -> None:
    lengths = [((i * 37) % 50) + 1 for i in range(1000)]
    a = length_grouped_order(lengths, 32, seed=1, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(1000))
    assert all(len(b) <= 32 for b in a)
    assert a == length_grouped_order(lengths, 32, seed=1, epoch=0)
    assert a != length_grouped_order(lengths, 32, seed=1, epoch=1)
    assert a != length_grouped_order(lengths, 32, seed=2, epoch=0)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 10  # grouped: little padding inside a batch
    assert length_grouped_order([], 4, seed=0, epoch=0) == []
