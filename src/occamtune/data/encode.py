"""Words to model inputs. Long sentences become overlapping windows so that no word is ever
dropped; each word's prediction comes from exactly one window (the one that `owns` it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from occamtune.data.shapes import word_shape


@dataclass
class Window:
    """One model input cut from a sentence (all lists have the length of `input_ids`)."""

    input_ids: list[int]
    word_index: list[int]  # word of the sentence for each sub-word, -1 on special tokens
    first: list[bool]  # True on the first sub-word of each word
    label_ids: list[int]  # label id on first sub-words, -100 elsewhere (all -100 unlabelled)
    shape_ids: list[int]  # word shape on every sub-word, 0 on special tokens
    sentence: int
    words: tuple[int, int]  # [start, end) words covered
    owned: tuple[int, int]  # [start, end) words whose predictions come from this window


def _word_pieces(sentences: list[list[str]], tokenizer: Any, budget: int) -> list[list[list[int]]]:
    """Sub-word ids of every word, tokenised in one batched call; an empty result becomes [UNK]
    and a word longer than the budget keeps its first `budget` pieces."""
    flat = [w for s in sentences for w in s]
    ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    out, k = [], 0
    for s in sentences:
        out.append([(p or [tokenizer.unk_token_id])[:budget] for p in ids[k:k + len(s)]])
        k += len(s)
    return out


def _spans(lengths: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) word ranges of whole words that fit `budget` sub-words, consecutive ranges
    overlapping by about `stride` sub-words."""
    spans, start, n = [], 0, len(lengths)
    while True:
        end, used = start, 0
        while end < n and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
        spans.append((start, end))
        if end >= n:
            return spans
        back, overlap = end, 0  # step back so the next window re-reads ~stride sub-words
        while back - 1 > start and overlap + lengths[back - 1] <= stride:
            back -= 1
            overlap += lengths[back]
        start = back


def _owned(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Split every overlap in the middle: owned ranges partition the sentence's words."""
    owned = []
    for i, (s, e) in enumerate(spans):
        lo = s if i == 0 else (s + spans[i - 1][1]) // 2
        hi = e if i == len(spans) - 1 else (spans[i + 1][0] + e) // 2
        owned.append((lo, hi))
    return owned


def encode_words(sentences: list[list[str]], tokenizer: Any, max_length: int,
                 label_ids: list[list[int]] | None = None, stride: int = 32) -> list[Window]:
    """Windows for every sentence (one when it fits in `max_length`)."""
    budget = max_length - 2  # [CLS] ... [SEP]
    pieces = _word_pieces(sentences, tokenizer, budget)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    windows = []
    for si, (words, word_pieces) in enumerate(zip(sentences, pieces)):
        labels = label_ids[si] if label_ids is not None else None
        spans = _spans([len(p) for p in word_pieces], budget, stride) if words else [(0, 0)]
        for (start, end), owned in zip(spans, _owned(spans)):
            ids, index, first, lab, shape = [cls], [-1], [False], [-100], [0]
            for w in range(start, end):
                n = len(word_pieces[w])
                ids += word_pieces[w]
                index += [w] * n
                first += [True] + [False] * (n - 1)
                lab += [labels[w] if labels is not None else -100] + [-100] * (n - 1)
                shape += [word_shape(words[w])] * n
            ids.append(sep)
            index.append(-1)
            first.append(False)
            lab.append(-100)
            shape.append(0)
            windows.append(Window(ids, index, first, lab, shape, si, (start, end), owned))
    return windows


def encode_texts(texts: list[str], tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Classification inputs, truncated at `max_length` sub-words."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(enc["input_ids"], enc["attention_mask"])]


def window_count_report(windows: list[Window]) -> dict[str, int]:
    per_sentence: dict[int, int] = {}
    for w in windows:
        per_sentence[w.sentence] = per_sentence.get(w.sentence, 0) + 1
    return {"sentences": len(per_sentence), "windows": len(windows),
            "sentences_split": sum(1 for n in per_sentence.values() if n > 1)}


class Collator:
    """Pads a list of windows (or classification dicts) to the longest in the batch."""

    def __init__(self, pad_id: int = 0) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[Any]) -> dict[str, torch.Tensor]:
        if isinstance(items[0], Window):
            return self._windows(items)
        return self._texts(items)

    def _pad(self, rows: list[list[int]], value: int, width: int) -> torch.Tensor:
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    def _windows(self, items: list[Window]) -> dict[str, torch.Tensor]:
        width = max(len(w.input_ids) for w in items)
        ids = self._pad([w.input_ids for w in items], self.pad_id, width)
        return {
            "input_ids": ids,
            "attention_mask": self._pad([[1] * len(w.input_ids) for w in items], 0, width),
            "token_type_ids": torch.zeros_like(ids),
            "labels": self._pad([w.label_ids for w in items], -100, width),
            "shape_ids": self._pad([w.shape_ids for w in items], 0, width),
            "first": self._pad([[int(f) for f in w.first] for w in items], 0, width).bool(),
        }

    def _texts(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(x["input_ids"]) for x in items)
        ids = self._pad([x["input_ids"] for x in items], self.pad_id, width)
        batch = {"input_ids": ids,
                 "attention_mask": self._pad([[1] * len(x["input_ids"]) for x in items], 0, width),
                 "token_type_ids": torch.zeros_like(ids)}
        if "label" in items[0]:
            batch["labels"] = torch.tensor([x["label"] for x in items], dtype=torch.long)
        return batch


def length_grouped_order(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of indices with similar lengths (less padding), deterministic for (seed, epoch):
    shuffle, cut into mega-batches of 50 batches, sort each by length, cut, shuffle batches."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    mega = 50 * batch_size
    batches = []
    for i in range(0, len(perm), mega):
        chunk = sorted(perm[i:i + mega], key=lambda j: -lengths[j])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]
