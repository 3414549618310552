import pytest

from occamtune.data import Collator, encode_words, length_grouped_order
from tests.fixtures.tiny import tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_long_sentence_windows_own_every_word_once(tok) -> None:
    words = ["Paris", "visited", "London", "Smithsonian"] * 150  # 600 words, some multi-piece
    labels = [i % 3 for i in range(len(words))]
    wins = encode_words([words], tok, max_length=64, label_ids=[labels], stride=16)
    assert len(wins) > 5
    owned = [w for win in wins for w in range(*win.owned)]
    assert owned == list(range(len(words)))  # a partition, in order
    for win in wins:
        assert len(win.input_ids) <= 64
        for pos, (w, f) in enumerate(zip(win.word_index, win.first)):
            if f:
                assert win.label_ids[pos] == labels[w]
    firsts = {w for win in wins for w, f in zip(win.word_index, win.first) if f}
    assert firsts == set(range(len(words)))


def test_word_without_pieces_becomes_unk_and_huge_word_is_cut(tok) -> None:
    wins = encode_words([["\u200b", "abcdefghij" * 3]], tok, max_length=16)  # 30 pieces
    assert len(wins) == 2  # the huge word fills a window of its own; nothing is dropped
    assert wins[0].input_ids[1] == tok.unk_token_id
    assert all(len(w.input_ids) <= 16 for w in wins)


def test_collator_pads(tok) -> None:
    wins = encode_words([["Paris"], ["John", "met", "Mary"]], tok, max_length=32, label_ids=[[1], [2, 0, 2]])
    batch = Collator(pad_id=tok.pad_token_id)(wins)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["shape_ids"].shape
    assert batch["attention_mask"][0].sum() == len(wins[0].input_ids)
    assert batch["labels"][0, -1] == -100 and batch["first"].sum() == 4


def test_length_grouped_order_is_a_seeded_partition() -> None:
    lengths = [((i * 37) % 50) + 1 for i in range(1000)]
    a = length_grouped_order(lengths, 32, seed=1, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(1000))
    assert a == length_grouped_order(lengths, 32, seed=1, epoch=0)
    assert a != length_grouped_order(lengths, 32, seed=1, epoch=1)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in a) / len(a)
    assert spread < 10  # grouped: little padding inside a batch
