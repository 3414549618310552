"""Extractive question answering (SQuAD v1.1): start/end head, windows over long contexts,
n-best span decoding, SQuAD exact match and F1.

Question and context are encoded as one pair; a context longer than the window becomes several
windows overlapping by `data.stride` sub-words (the Hugging Face `run_qa` recipe, with the fast
tokenizer's offset mapping), so no answer is lost. A window that does not hold the answer is
trained to point at [CLS]. Decoding takes the `N_BEST` best starts and ends of every window of a
question, keeps spans inside the context of at most `MAX_ANSWER_LENGTH` sub-words, and returns the
best one across windows as character offsets of the original context.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.errors import ConfigError, DataError
from occamtune.tasks.base import Examples, Predictions, Task, register_task
from occamtune.tasks.squad import squad_scores
from occamtune.tasks.tables import md_table

N_BEST = 20  # starts and ends considered per window (run_qa's n_best_size)
MAX_ANSWER_LENGTH = 30  # sub-words (run_qa's max_answer_length)
LABELS = ["start", "end"]


@dataclass(frozen=True)
class Question:
    """One question on one context; `answers` are (text, character start) pairs (empty when
    unlabelled); `where` is the question's JSON path in its file, for messages."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    line: int
    where: str = ""


def _need(obj: Any, key: str, kind: type, where: str, path: Path) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise DataError(path, f"{where}.{key}: expected {kind.__name__}, got {value!r:.60}")
    return value


def _answers(qa: dict, context: str, where: str, path: Path, has_labels: bool) -> tuple:
    answers = []
    for a, ans in enumerate(qa.get("answers") or []):
        at = f"{where}.answers[{a}]"
        text, start = _need(ans, "text", str, at, path), _need(ans, "answer_start", int, at, path)
        if context[start:start + len(text)] != text:
            raise DataError(path, f"{at}: answer text {text!r} is not at answer_start {start} of "
                                  f"the context (which reads {context[start:start + len(text)]!r} "
                                  "there); fix answer_start")
        answers.append((text, start))
    if has_labels and not answers:
        raise DataError(path, f"{where}.answers: a training or evaluation question needs an answer")
    return tuple(answers)


def read_squad(path: str | Path, has_labels: bool = True) -> Examples:
    """Read a SQuAD v1.1 JSON file; a malformed question is a `DataError` naming its JSON path
    (e.g. `data[3].paragraphs[0].qas[2].answers[0]`)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file does not exist")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(p, f"not JSON: {exc.msg}", line=exc.lineno) from exc
    items = []
    for d, article in enumerate(_need(doc, "data", list, "$", p)):
        for g, para in enumerate(_need(article, "paragraphs", list, f"data[{d}]", p)):
            where = f"data[{d}].paragraphs[{g}]"
            context = _need(para, "context", str, where, p)
            for q, qa in enumerate(_need(para, "qas", list, where, p)):
                at = f"{where}.qas[{q}]"
                question = _need(qa, "question", str, at, p)
                answers = _answers(qa, context, at, p, has_labels)
                items.append(Question(str(qa.get("id", at)), question, context, answers,
                                      len(items) + 1, at))
    if not items:
        raise DataError(p, "no questions in the file")
    return Examples(items, str(p))


def _question_budget(items: list[Question], tokenizer: Any, limit: int) -> list[str]:
    """Questions cut to at most `limit` sub-words (so that every window has room for context, as
    run_qa's max_query_length does), with a note naming the first one cut: no word is dropped
    unsaid."""
    from occamtune.io import note

    enc = tokenizer([x.question for x in items], add_special_tokens=False,
                    return_offsets_mapping=True)
    cut = {i for i, off in enumerate(enc["offset_mapping"]) if len(off) > limit}
    if cut:
        first = items[min(cut)]
        note(f"{len(cut)} question(s) longer than {limit} sub-words (half of data.max_length) "
             f"were cut to {limit} for encoding, the first {first.where or first.id!r}; raise "
             "data.max_length to keep them whole")
    return [x.question[:off[limit - 1][1]] if i in cut else x.question
            for i, (x, off) in enumerate(zip(items, enc["offset_mapping"]))]


def encode_questions(items: list[Question], tokenizer: Any, max_length: int,
                     stride: int) -> list[dict[str, Any]]:
    """Windows over (question, context) pairs: input ids, token types, the character offsets of
    the context sub-words (None elsewhere), the question's index and, when labelled, the window's
    start/end targets (the first answer's sub-words, or 0, [CLS], when it lies outside)."""
    if not items:
        return []
    questions = _question_budget(items, tokenizer, max_length // 2)
    longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"])
    stride = max(0, min(stride, max_length - longest - 4))  # room for new context in each window
    enc = tokenizer(questions, [x.context for x in items], truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True)
    feats = []
    for w, ids in enumerate(enc["input_ids"]):
        ex = int(enc["overflow_to_sample_mapping"][w])
        seq = enc.sequence_ids(w)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq)]
        types = enc["token_type_ids"][w] if "token_type_ids" in enc else [0] * len(ids)
        feat = {"input_ids": list(ids), "attention_mask": [1] * len(ids),
                "token_type_ids": list(types), "offsets": offsets, "example": ex}
        if items[ex].answers:
            feat["start"], feat["end"] = _targets(offsets, *items[ex].answers[0])
        feats.append(feat)
    return feats


def _targets(offsets: list[tuple[int, int] | None], text: str, start: int) -> tuple[int, int]:
    end = start + len(text)
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return 0, 0  # the answer is not (wholly) in this window: point at [CLS]
    first = next(i for i in inside if offsets[i][1] > start)
    last = next(i for i in reversed(inside) if offsets[i][0] < end)
    return first, last


class SpanHead(nn.Module):
    """Dropout and a linear layer giving each sub-word a start and an end logit; padding gets
    a very low score."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.out(self.dropout(hidden))  # (B, T, 2): start, end
        pad = (batch["attention_mask"] == 0).unsqueeze(-1)  # (B, T, 1)
        return logits.masked_fill(pad, -1e4)


class SpanCollator:
    """Pads windows: input_ids, attention_mask, token_type_ids (B, T); `start_positions` and
    `end_positions` (B,) when labelled."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from occamtune.data.encode import _pad

        width = max(len(x["input_ids"]) for x in items)
        batch = {"input_ids": _pad([x["input_ids"] for x in items], self.pad_id, width),
                 "attention_mask": _pad([x["attention_mask"] for x in items], 0, width),
                 "token_type_ids": _pad([x["token_type_ids"] for x in items], 0, width)}
        if all("start" in x for x in items):
            batch["start_positions"] = torch.tensor([x["start"] for x in items])
            batch["end_positions"] = torch.tensor([x["end"] for x in items])
        return batch


def best_span(lp: np.ndarray, offsets: list[Any]) -> tuple[float, int, int] | None:
    """The best (log-prob, start, end) sub-word span of one window: inside the context, end not
    before start, at most MAX_ANSWER_LENGTH sub-words; lp (T, 2) start/end log-probs."""
    n = len(offsets)
    starts = [i for i in np.argsort(-lp[:n, 0])[:N_BEST] if offsets[i] is not None]
    ends = [j for j in np.argsort(-lp[:n, 1])[:N_BEST] if offsets[j] is not None]
    best = None
    for i in starts:
        for j in ends:
            if i <= j < i + MAX_ANSWER_LENGTH:
                score = float(lp[i, 0] + lp[j, 1])
                if best is None or score > best[0]:
                    best = (score, int(i), int(j))
    return best


@register_task
class QATask(Task):
    """Extractive question answering on SQuAD v1.1 JSON, scored by SQuAD exact match and F1."""

    name = "qa"
    metric = "f1"
    headline = ("f1", "exact_match")
    needs_fast_tokenizer = True  # offsets map sub-words back to the context's characters
    model_inputs = ("input_ids", "attention_mask", "token_type_ids")
    description = "extractive question answering (SQuAD v1.1 JSON), scored by SQuAD F1 and EM"

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Examples:
        return read_squad(path, has_labels)

    def label_set(self, dataset: Examples) -> list[str]:
        return list(LABELS)

    def example_labels(self, example: Question) -> list[str]:
        return []

    def encode(self, dataset: Examples, tokenizer: Any, labels: list[str], data: Any,
               head: Any = None) -> list[Any]:
        return encode_questions(dataset.items, tokenizer, data.max_length, data.stride)

    def collator(self, pad_id: int) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        return SpanCollator(pad_id)

    def take(self, dataset: Examples, features: list[Any], n: int) -> tuple[Any, list[Any]]:
        return dataset.with_items(dataset.items[:n]), [f for f in features if f["example"] < n]

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return SpanHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(*self.as_classes(logits, batch))  # the mean of start and end CE

    def as_classes(self, logits: torch.Tensor,
                   batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Two choices per window, over its sub-words: the start and the end."""
        scores = logits.transpose(1, 2).flatten(0, 1)  # (B, T, 2) -> (2B, T)
        gold = torch.stack([batch["start_positions"], batch["end_positions"]], 1).flatten()  # (2B,)
        return scores, gold

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per window: (T_window, 2) start and end log-probs over its sub-words."""
        logp = torch.log_softmax(logits.float(), dim=1).cpu().numpy()
        lengths = batch["attention_mask"].sum(1).tolist()
        return [logp[b, :n] for b, n in enumerate(lengths)]

    def decode(self, gathered: list[np.ndarray], dataset: Examples, features: list[Any],
               labels: list[str]) -> Predictions:
        """Per question: {text, start, end, score} (character offsets in its context) and
        log_probs [best span's, gold span's (nan unlabelled)] (for `data_bits`)."""
        best: list[tuple[float, int, int, int] | None] = [None] * len(dataset.items)
        gold = np.full((len(dataset.items), 2), -np.inf)  # windows holding the answer; the rest
        for w, (feat, lp) in enumerate(zip(features, gathered)):
            ex = feat["example"]
            if "start" in feat:
                col = 0 if feat["start"] > 0 else 1
                gold[ex, col] = max(gold[ex, col], float(lp[feat["start"], 0] + lp[feat["end"], 1]))
            span = best_span(lp, feat["offsets"])
            if span is not None and (best[ex] is None or span[0] > best[ex][0]):
                best[ex] = (*span, w)
        gold_lp = np.where(np.isfinite(gold[:, 0]), gold[:, 0], gold[:, 1])
        answers, log_probs = [], []
        for ex, (item, b) in enumerate(zip(dataset.items, best)):
            if b is None:
                answers.append({"text": "", "start": 0, "end": 0, "score": 0.0})
                log_probs.append(np.array([-np.inf, gold_lp[ex] if item.answers else np.nan]))
                continue
            offsets = features[b[3]]["offsets"]
            start, end = offsets[b[1]][0], offsets[b[2]][1]
            answers.append({"text": item.context[start:end], "start": int(start), "end": int(end),
                            "score": round(float(np.exp(b[0])), 4)})
            log_probs.append(np.array([b[0], gold_lp[ex] if item.answers else np.nan]))
        return Predictions(answers, log_probs)

    def gold(self, dataset: Examples) -> list[Any]:
        return [[text for text, _ in x.answers] for x in dataset.items]

    def score(self, gold: list[list[str]], pred: list[dict[str, Any]]) -> dict[str, Any]:
        return squad_scores(gold, [p["text"] for p in pred])

    def data_bits(self, gold: list[Any], preds: Predictions, labels: list[str]) -> float:
        """-log2 p(gold start) p(gold end) of each question, in the window holding the answer
        that gives it the highest probability (windows' targets are what training codes)."""
        return -float(sum(lp[1] for lp in preds.log_probs)) / np.log(2)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        rows = [["exact match", metrics["exact_match"]], ["F1", metrics["f1"]]]
        return "\n\n".join([
            f"# Evaluation on {source}",
            (f"SQuAD F1 **{metrics['f1']:.2f}**, exact match {metrics['exact_match']:.2f} over "
             f"{metrics['n']} questions (the official SQuAD v1.1 answer normalization, the best "
             f"of the reference answers). Data code length {metrics['data_bits']:.0f} bits."),
            md_table(["metric", "score"], rows),
        ]) + "\n"

    def dataset_from_inputs(self, inputs: list[Any]) -> Examples:
        """Dicts {"question", "context"}, or such dicts as JSON text (a command-line input)."""
        items = []
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                try:
                    x = json.loads(x)
                except json.JSONDecodeError:
                    x = None
            if (not isinstance(x, dict) or not isinstance(x.get("question"), str)
                    or not isinstance(x.get("context"), str)):
                raise DataError("<input>", 'a qa input is {"question": "...", "context": "..."} '
                                           "(as an object or as JSON text)", line=i + 1)
            items.append(Question(str(i), x["question"], x["context"], (), i + 1))
        return Examples(items, "<input>")

    def format_predictions(self, inputs: list[Any], dataset: Examples, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        return [{"question": q.question, "answer": p["text"], "start": p["start"],
                 "end": p["end"], "score": p["score"]}
                for q, p in zip(dataset.items, preds.labels)]

    def probe_vectors(self, batches: Any, features: list[Any], dataset: Any) -> Any:
        raise ConfigError("the qa task has no linear probe for `occamtune mdl` (an answer is a "
                          "span, not a label per vector); use relation, classify or ner")
