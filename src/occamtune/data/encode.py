"""Words to model inputs. Long sentences become overlapping windows so that no word is ever
dropped; each word's prediction comes from exactly one window (the one that `owns` it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from occamtune.data.shapes import word_shape

IGNORE = -100  # label id that the loss ignores


@dataclass
class Window:
    """One model input cut from a sentence (all lists have the length of `input_ids`).

    Attributes:
        input_ids: sub-word ids with the tokenizer's special tokens ([CLS] ... [SEP]).
        word_index: the word of the sentence each sub-word belongs to; -1 on special tokens.
        first: True on the first sub-word of each word.
        label_ids: the word's label id on first sub-words, -100 elsewhere (all -100 unlabelled).
        shape_ids: the word's shape (see `word_shape`) on every sub-word; 0 on special tokens.
        sentence: index of the sentence in the input list.
        words: [start, end) range of the words this window covers.
        owned: [start, end) range of the words whose predictions come from this window; the
            owned ranges of one sentence's windows partition its words.
    """

    input_ids: list[int]
    word_index: list[int]
    first: list[bool]
    label_ids: list[int]
    shape_ids: list[int]
    sentence: int
    words: tuple[int, int]
    owned: tuple[int, int]


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids a tokenizer puts before and after one sequence.

    Found by comparing the encoding of a word with and without special tokens; falls back to
    the cls/bos and sep/eos ids.

    Returns:
        (prefix, suffix), e.g. ([CLS], [SEP]) for BERT.
    """
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if bare and full[i:i + len(bare)] == bare:
            return full[:i], full[i + len(bare):]
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return [t for t in (first,) if t is not None], [t for t in (last,) if t is not None]


def word_prefix(tokenizer: Any) -> str:
    """What to put before a word tokenized on its own so that it gets the sub-words it has
    inside a sentence: " " for byte-level BPE (GPT-2, Llama 3, SmolLM2), whose sub-words carry
    the space before a word (`Ġ`: "Paris" alone is `Paris`, in a sentence `ĠParis`); "" for
    WordPiece and SentencePiece, which split words alone as they split them in a sentence.

    This is what `is_split_into_words=True` with `add_prefix_space=True` does for GPT-2-style
    tokenizers, here found by probing rather than read from a flag that not every tokenizer
    (e.g. one rebuilt from a GGUF file) sets. Every word gets it, the first included, so a
    word's sub-words do not depend on where a window starts.
    """
    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    if ids("a") + ids("b") == ids("a b"):
        return ""
    return " " if ids("a") + ids(" b") == ids("a b") else ""


def _word_pieces(sentences: list[list[str]], tokenizer: Any, budget: int) -> list[list[list[int]]]:
    """Sub-word ids of every word, from one batched tokenizer call (each word with its
    `word_prefix`); a word without sub-words becomes [UNK] and a word longer than `budget`
    keeps its first `budget` sub-words."""
    prefix = word_prefix(tokenizer)
    flat = [prefix + w for s in sentences for w in s]
    ids = tokenizer(flat, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"] if flat else []
    unk = [tokenizer.unk_token_id]
    out, k = [], 0
    for s in sentences:
        out.append([list(p or unk)[:budget] for p in ids[k:k + len(s)]])
        k += len(s)
    return out


def _spans(lengths: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) ranges of whole words that fit in `budget` sub-words; consecutive ranges
    overlap by at most `stride` sub-words (and never so much that no new word fits)."""
    spans, start, n = [], 0, len(lengths)
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        spans.append((start, end))
        if end >= n:
            return spans
        limit = min(stride, budget - lengths[end])  # the next window must reach word `end`
        back, overlap = end, 0
        while back - 1 > start and overlap + lengths[back - 1] <= limit:
            back -= 1
            overlap += lengths[back]
        start = back


def _owned(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split every overlap in the middle, so that the owned ranges partition the words."""
    owned = []
    for i, (s, e) in enumerate(spans):
        lo = s if i == 0 else (s + spans[i - 1][1]) // 2
        hi = e if i == len(spans) - 1 else (spans[i + 1][0] + e) // 2
        owned.append((lo, hi))
    return owned


def _window(words: list[str], pieces: list[list[int]], labels: Sequence[int] | None,
            span: tuple[int, int], special: tuple[list[int], list[int]]) -> Window:
    """The window of words `span` of one sentence (its `sentence` and `owned` are set later)."""
    prefix, suffix = special
    ids, index, first = list(prefix), [-1] * len(prefix), [False] * len(prefix)
    lab, shape = [IGNORE] * len(prefix), [0] * len(prefix)
    for w in range(*span):
        n = len(pieces[w])
        ids += pieces[w]
        index += [w] * n
        first += [True] + [False] * (n - 1)
        lab += [labels[w] if labels is not None else IGNORE] + [IGNORE] * (n - 1)
        shape += [word_shape(words[w])] * n
    n = len(suffix)
    return Window(ids + suffix, index + [-1] * n, first + [False] * n, lab + [IGNORE] * n,
                  shape + [0] * n, 0, span, span)


def _add_context(win: Window, left: list[int], right: list[int], n_prefix: int, n_suffix: int) -> None:
    """Insert unlabelled context sub-words around the sentence's own (after the prefix tokens,
    before the suffix tokens); they carry word index -1, like special tokens."""
    end = len(win.input_ids) - n_suffix
    for name, pad in (("input_ids", None), ("word_index", -1), ("first", False),
                      ("label_ids", IGNORE), ("shape_ids", 0)):
        row = getattr(win, name)
        lpad, rpad = (left, right) if pad is None else ([pad] * len(left), [pad] * len(right))
        setattr(win, name, row[:n_prefix] + lpad + row[n_prefix:end] + rpad + row[end:])


def _context(pieces: list[list[list[int]]], docs: list[int], si: int,
             room: int) -> tuple[list[int], list[int]]:
    """Up to `room` sub-words of the sentences around sentence `si` in its document: the nearest
    ones, half on each side (a side with too little gives its share to the other)."""

    def gather(order: range) -> list[list[int]]:
        out, n = [], 0
        for j in order:
            if docs[j] != docs[si] or n >= room:
                break
            out.append([t for word in pieces[j] for t in word])
            n += len(out[-1])
        return out

    left = [t for sent in reversed(gather(range(si - 1, -1, -1))) for t in sent]
    right = [t for sent in gather(range(si + 1, len(pieces))) for t in sent]
    n_left = min(len(left), max(room // 2, room - len(right)))
    n_right = min(len(right), room - n_left)
    return left[len(left) - n_left:], right[:n_right]


def encode_words(sentences: list[list[str]], tokenizer: Any, max_length: int,
                 label_ids: list[list[int]] | None = None, stride: int = 32,
                 docs: list[int] | None = None, context: int = 0) -> list[Window]:
    """Model windows for word-level sentences; no word is ever dropped.

    A sentence whose sub-words fit in `max_length` (with special tokens) gives one window; a
    longer one gives windows of whole words, consecutive windows overlapping by about `stride`
    sub-words. Lower-casing is left to the tokenizer.

    Args:
        sentences: the words of each sentence.
        tokenizer: a Hugging Face fast tokenizer.
        max_length: the longest window, special tokens included.
        label_ids: one label id per word of each sentence, or None.
        stride: sub-words shared by consecutive windows of a long sentence.
        docs: the document of each sentence; with `context`, neighbouring sentences of the same
            document are added around a sentence (document context, as in Schweter and Akbik
            2020, "FLERT"). None: each sentence is its own document.
        context: at most this many sub-words of document context per window (unlabelled,
            never predicted), within `max_length`.

    Returns:
        The windows, sentence by sentence, each sentence's windows left to right.

    Raises:
        ValueError: max_length leaves no room for a word, or labels do not match the words.
    """
    special = special_tokens(tokenizer)
    budget = max_length - len(special[0]) - len(special[1])
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for words besides the "
                         f"{len(special[0]) + len(special[1])} special tokens")
    if label_ids is not None:
        _check_label_ids(sentences, label_ids)
    pieces = _word_pieces(sentences, tokenizer, budget)
    windows = []
    for si, (words, word_pieces) in enumerate(zip(sentences, pieces)):
        labels = label_ids[si] if label_ids is not None else None
        spans = _spans([len(p) for p in word_pieces], budget, max(0, stride)) if words else [(0, 0)]
        for span, owned in zip(spans, _owned(spans)):
            win = _window(words, word_pieces, labels, span, special)
            win.sentence, win.owned = si, owned
            room = min(context, max_length - len(win.input_ids))
            if docs is not None and room > 0 and len(spans) == 1:
                _add_context(win, *_context(pieces, docs, si, room), len(special[0]), len(special[1]))
            windows.append(win)
    return windows


def _check_label_ids(sentences: list[list[str]], label_ids: list[list[int]]) -> None:
    if len(label_ids) != len(sentences):
        raise ValueError(f"{len(label_ids)} label lists for {len(sentences)} sentences")
    for i, (words, labels) in enumerate(zip(sentences, label_ids)):
        if len(words) != len(labels):
            raise ValueError(f"sentence {i}: {len(labels)} labels for {len(words)} words")


def window_count_report(windows: list[Window]) -> dict[str, int]:
    """How many sentences, windows, and sentences split into several windows."""
    per_sentence: dict[int, int] = {}
    for w in windows:
        per_sentence[w.sentence] = per_sentence.get(w.sentence, 0) + 1
    return {"sentences": len(per_sentence), "windows": len(windows),
            "sentences_split": sum(1 for n in per_sentence.values() if n > 1)}


def encode_texts(texts: list[str], tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Classification inputs, truncated at `max_length` sub-words (special tokens included).

    Returns:
        One {"input_ids": list, "attention_mask": list} per text.
    """
    if not texts:
        return []
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": list(ids), "attention_mask": list(mask)}
            for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]


def _pad(rows: Sequence[Sequence[int]], value: int, width: int) -> torch.Tensor:
    """Rows of ints, right-padded with `value` to `width`, as a LongTensor."""
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


class Collator:
    """Pads a batch of windows (or classification dicts) to its longest item (dynamic padding).

    Windows give `input_ids`, `attention_mask`, `token_type_ids` (zeros), `labels` (padded
    with -100), `shape_ids` (padded with 0) and `first` (bool). Dicts with `input_ids` give
    the first three, plus `labels` of shape (B,) from an int `label`, or padded with -100
    from a list `labels`.

    Args:
        tokenizer: the tokenizer whose pad id pads `input_ids` (optional).
        pad_id: the pad id; overrides the tokenizer's. Default 0.
    """

    def __init__(self, tokenizer: Any | None = None, pad_id: int | None = None) -> None:
        if pad_id is None and tokenizer is not None:
            pad_id = tokenizer.pad_token_id
        self.pad_id = int(pad_id) if pad_id is not None else 0

    def __call__(self, items: Sequence[Window | dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not items:
            raise ValueError("cannot collate an empty batch")
        if isinstance(items[0], Window):
            return self._windows(items)  # type: ignore[arg-type]
        return self._dicts(items)  # type: ignore[arg-type]

    def _base(self, ids: list[Sequence[int]], masks: list[Sequence[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in ids)
        input_ids = _pad(ids, self.pad_id, width)
        return {"input_ids": input_ids, "attention_mask": _pad(masks, 0, width),
                "token_type_ids": torch.zeros_like(input_ids)}

    def _windows(self, items: Sequence[Window]) -> dict[str, torch.Tensor]:
        batch = self._base([w.input_ids for w in items], [[1] * len(w.input_ids) for w in items])
        width = batch["input_ids"].shape[1]
        batch["labels"] = _pad([w.label_ids for w in items], IGNORE, width)
        batch["shape_ids"] = _pad([w.shape_ids for w in items], 0, width)
        batch["first"] = _pad([w.first for w in items], 0, width).bool()
        return batch

    def _dicts(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(x["input_ids"]) for x in items]
        masks = [list(x.get("attention_mask", [1] * len(i))) for x, i in zip(items, ids)]
        batch = self._base(ids, masks)
        width = batch["input_ids"].shape[1]
        if all("label" in x for x in items):
            batch["labels"] = torch.tensor([int(x["label"]) for x in items], dtype=torch.long)
        elif all("labels" in x for x in items):
            batch["labels"] = _pad([list(x["labels"]) for x in items], IGNORE, width)
        elif any("label" in x or "labels" in x for x in items):
            raise ValueError("some items of the batch have labels and some do not")
        for key in ("shape_ids", "first"):
            if all(key in x for x in items):
                batch[key] = _pad([list(x[key]) for x in items], 0, width)
        if "first" in batch:
            batch["first"] = batch["first"].bool()
        return batch


def length_grouped_order(lengths: list[int], batch_size: int, seed: int,
                         epoch: int) -> list[list[int]]:
    """Batches of indices with examples of similar length grouped together (less padding).

    Shuffle all indices, cut them into mega-batches of 50 batches, sort each mega-batch by
    length (longest first), cut it into batches, then shuffle the order of the batches. The
    generator is seeded with `seed * 1000 + epoch`, so that (seed, epoch) pairs do not collide.

    Args:
        lengths: the length of each example.
        batch_size: examples per batch (the last batch of a mega-batch may be smaller).
        seed: the run's seed.
        epoch: the epoch; each epoch has its own order.

    Returns:
        Batches covering every index exactly once; the same for the same (seed, epoch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    mega = 50 * batch_size
    batches = []
    for i in range(0, len(perm), mega):
        chunk = sorted(perm[i:i + mega], key=lambda j: -lengths[j])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]
