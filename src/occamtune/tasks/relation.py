"""Relation extraction between two marked spans, scored by the official SemEval-2010 Task 8 score.

The two arguments are marked in the sentence: `<e1>head</e1> ... <e2>tail</e2>` (the SemEval
markup). The four markers become special tokens added to the tokenizer and the word embeddings;
the head reads the encoder's vectors at the `<e1>` and `<e2>` tokens, concatenated: the "entity
start" representation of Baldini Soares et al. 2019 ("Matching the Blanks"), their best one.
`model.pooling=cls` reads [CLS] instead, and `model.pooling=last` the last real sub-word (the
default on decoder-only models, where only it has seen the whole sentence: the `<e1>` vector of
a left-to-right model has seen neither argument).

Files: `LABEL<TAB>marked sentence` lines (SemEval-2010 Task 8 as distributed in TSV), or JSON
lines `{"text": ..., "head": [start, end], "tail": [start, end], "label": ...}` with character
offsets (end exclusive), which are turned into the same markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune.errors import DataError
from occamtune.tasks.base import Examples, Predictions, Task, pool, register_task
from occamtune.tasks.classify import ClassifyTask, class_tables, classify_metrics
from occamtune.tasks.tables import md_table

MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")
OTHER = "Other"


@dataclass(frozen=True)
class RelationExample:
    """A sentence with its two arguments marked, its relation (None: unlabelled), its line."""

    text: str
    label: str | None
    line: int


def check_markup(text: str) -> str | None:
    """What is wrong with the markers of `text` (None: each marker once, each span opened
    before it is closed, the spans not nested or overlapping)."""
    for m in MARKERS:
        if text.count(m) != 1:
            return (f"expected one {m} marker, found {text.count(m)}: mark the two arguments as "
                    "<e1>...</e1> and <e2>...</e2>")
    o1, c1, o2, c2 = (text.index(m) for m in MARKERS)
    if not (o1 < c1 and o2 < c2):
        return "a closing marker comes before its opening one (an unclosed marker?)"
    if o1 < o2 < c1 or o2 < o1 < c2:
        return "the <e1> and <e2> spans overlap; they must be disjoint"
    return None


def mark(text: str, head: tuple[int, int], tail: tuple[int, int]) -> str:
    """`text` with `<e1>`/`</e1>` around characters [head) and `<e2>`/`</e2>` around [tail)."""
    inserts = sorted([(head[0], 1, "<e1>"), (head[1], 0, "</e1>"), (tail[0], 1, "<e2>"),
                      (tail[1], 0, "</e2>")], key=lambda x: (x[0], x[1]), reverse=True)
    for pos, _, marker in inserts:
        text = text[:pos] + marker + text[pos:]
    return text


def _span(record: dict, key: str, n: int) -> tuple[int, int]:
    value = record.get(key)
    if isinstance(value, dict):
        value = [value.get("start"), value.get("end")]
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) for v in value)):
        raise ValueError(f"`{key}` must be [start, end] character offsets, got {value!r}")
    if not 0 <= value[0] < value[1] <= n:
        raise ValueError(f"`{key}` offsets {list(value)} are not a span of the {n}-character text")
    return int(value[0]), int(value[1])


def _record(record: Any, has_labels: bool) -> tuple[str, str | None]:
    """(marked text, label) of a {"text", "head", "tail", "label"} object."""
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise TypeError('expected an object with "text", "head", "tail" (and "label")')
    text = record["text"]
    head, tail = _span(record, "head", len(text)), _span(record, "tail", len(text))
    if head[0] < tail[1] and tail[0] < head[1]:
        raise ValueError(f"head {list(head)} and tail {list(tail)} overlap")
    label = record.get("label")
    if has_labels and not isinstance(label, str):
        raise ValueError('missing "label"')
    return mark(text, head, tail), label


def read_relations(path: str | Path, has_labels: bool = True) -> Examples:
    """Read `LABEL<TAB>marked sentence` lines, or JSON lines with character offsets (`.jsonl`,
    `.json`); a malformed example is a `DataError` naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file does not exist")
    is_json = p.suffix in (".jsonl", ".json")
    items = []
    for number, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            if is_json:
                text, label = _record(json.loads(raw), has_labels)
            else:
                label, sep, text = raw.partition("\t")
                if not sep:
                    if has_labels:
                        raise ValueError("expected LABEL<TAB>sentence with marked arguments")
                    label, text = None, raw
        except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise DataError(p, str(exc), line=number) from exc
        problem = check_markup(text)
        if problem:
            raise DataError(p, problem, line=number)
        items.append(RelationExample(text.strip(), (label or "").strip() or None, number))
    if not items:
        raise DataError(p, "no examples in the file")
    return Examples(items, str(p))


class EntityStartHead(nn.Module):
    """[<e1> vector; <e2> vector] (or [CLS], or the last sub-word) -> dropout -> linear."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.pooling = config.pooling
        self.markers = (int(config.extra["e1_id"]), int(config.extra["e2_id"]))
        self.dropout = nn.Dropout(config.dropout)
        one = self.pooling in ("cls", "last")
        self.out = nn.Linear(hidden_size * (1 if one else 2), len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.pooling in ("cls", "last"):
            pooled = pool(hidden, batch["attention_mask"], self.pooling)  # (B, H)
            return self.out(self.dropout(pooled))  # (B, L)
        ids = batch["input_ids"]
        vecs = []
        for marker in self.markers:  # each marker occurs once: a masked sum picks its vector
            at = (ids == marker).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            vecs.append((hidden * at).sum(1))  # (B, H)
        return self.out(self.dropout(torch.cat(vecs, dim=-1)))  # (B, 2H) -> (B, L)


def encode_marked(texts: list[str], tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """Sub-word ids of marked sentences; a sentence longer than `max_length` keeps a window
    around its two opening markers (both kept whenever they fit), not its first sub-words."""
    from occamtune.data.encode import special_tokens

    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    opening = set(tokenizer.convert_tokens_to_ids(["<e1>", "<e2>"]))  # what the head reads
    rows = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    out = []
    for ids in rows:
        at = [i for i, t in enumerate(ids) if t in opening] or [0]
        lo, hi = min(at), max(at) + 1
        # centre the two opening markers; when they are further apart than fits, keep the first
        start = lo if hi - lo > budget else lo - (budget - (hi - lo)) // 2
        start = max(0, min(start, len(ids) - budget))
        cut = list(prefix) + ids[start:start + budget] + list(suffix)
        out.append({"input_ids": cut, "attention_mask": [1] * len(cut)})
    return out


@register_task
class RelationTask(Task):
    """Relation classification between two marked arguments (SemEval-2010 Task 8 style).

    The headline `macro_f1` is the task's official score: macro-averaged F1 over the relation
    types, Other excluded, with a right type in the wrong direction counted as wrong
    (the "(9+1)-way, directionality taken into account" score of the official scorer).
    """

    name = "relation"
    metric = "macro_f1"
    headline = ("macro_f1", "accuracy")
    description = ("relation extraction between <e1>/<e2>-marked spans (TSV or JSON lines), "
                   "scored by the official SemEval-2010 Task 8 macro F1")
    special_tokens = MARKERS

    # one label per example, as in classification: the same labels, loss and decoding
    label_set = ClassifyTask.label_set
    example_labels = ClassifyTask.example_labels
    loss = ClassifyTask.loss
    gather = ClassifyTask.gather
    decode = ClassifyTask.decode
    gold = ClassifyTask.gold

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Examples:
        return read_relations(path, has_labels)

    def encode(self, dataset: Examples, tokenizer: Any, labels: list[str],
               data: Any, head: Any = None) -> list[Any]:
        index = {lab: i for i, lab in enumerate(labels)}
        feats = encode_marked([e.text for e in dataset.items], tokenizer, data.max_length)
        e1, e2 = tokenizer.convert_tokens_to_ids(["<e1>", "<e2>"])
        for feat, ex in zip(feats, dataset.items):
            ids = feat["input_ids"]
            feat["entities"] = (ids.index(e1) if e1 in ids else 0, ids.index(e2) if e2 in ids else 0)
            if ex.label is not None:
                feat["label"] = index[ex.label]
        return feats

    def head_options(self, model: Any, tokenizer: Any, run: Any = None) -> dict[str, Any]:
        e1, e2 = tokenizer.convert_tokens_to_ids(["<e1>", "<e2>"])
        return {**super().head_options(model, tokenizer), "extra": {"e1_id": e1, "e2_id": e2}}

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return EntityStartHead(config, hidden_size)

    def score(self, gold: list[str], pred: list[str]) -> dict[str, Any]:
        return relation_metrics(gold, pred)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        return relation_markdown(metrics, source)

    def dataset_from_inputs(self, inputs: list[Any]) -> Examples:
        """Marked sentences, or dicts {"text", "head", "tail"} with character offsets."""
        items = []
        for i, x in enumerate(inputs):
            try:
                text = _record(x, False)[0] if isinstance(x, dict) else str(x)
            except (TypeError, ValueError) as exc:
                raise DataError("<input>", str(exc), line=i + 1) from exc
            problem = check_markup(text)
            if problem:
                raise DataError("<input>", f"{problem} (in {text!r})", line=i + 1)
            items.append(RelationExample(text, None, i + 1))
        return Examples(items, "<input>")

    def format_predictions(self, inputs: list[Any], dataset: Examples, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        return [{"text": ex.text, "relation": lab, "score": round(float(np.exp(lp.max())), 4),
                 "probs": {c: round(float(np.exp(v)), 4) for c, v in zip(labels, lp)}}
                for ex, lab, lp in zip(dataset.items, preds.labels, preds.log_probs)]

    def probe_vectors(self, batches: Iterable[tuple[list[int], torch.Tensor, dict]],
                      features: list[Any], dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The frozen encoder's [<e1>; <e2>] vectors of each example, (1, 2H), and its label."""
        xs: list[np.ndarray] = [np.zeros(0)] * len(features)
        for idx, hidden, _ in batches:
            for row, i in enumerate(idx):
                a, b = features[i]["entities"]
                xs[i] = torch.cat([hidden[row, a], hidden[row, b]]).numpy()[None]
        return xs, [np.array([f["label"]], dtype=np.int64) for f in features]


def relation_type(label: str) -> str:
    """`Cause-Effect(e2,e1)` -> `Cause-Effect`: the relation without its direction."""
    return label.split("(", 1)[0]


def semeval_scores(gold: list[str], pred: list[str]) -> dict[str, dict[str, float]]:
    """Per relation type (Other excluded): P/R/F1 as the official SemEval-2010 Task 8 scorer
    computes them for its official score: a prediction counts for its type whatever its
    direction, but is correct only with the right direction too."""
    types = sorted({relation_type(x) for x in (*gold, *pred)} - {OTHER})
    out = {}
    for t in types:
        correct = sum(g == p and relation_type(g) == t for g, p in zip(gold, pred))
        proposed = sum(relation_type(p) == t for p in pred)
        actual = sum(relation_type(g) == t for g in gold)
        prec = correct / proposed if proposed else 0.0
        rec = correct / actual if actual else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[t] = {"precision": prec, "recall": rec, "f1": f1, "support": actual,
                  "wrong_direction": sum(relation_type(g) == relation_type(p) == t and g != p
                                         for g, p in zip(gold, pred))}
    return out


def relation_metrics(gold: list[str], pred: list[str]) -> dict[str, Any]:
    """The official score (`macro_f1`: the mean of the per-type F1s, Other excluded, direction
    counted), its per-type table, and the per-label (directed) table and confusion matrix."""
    per_type = semeval_scores(gold, pred)
    directed = classify_metrics(gold, pred)
    mean = (lambda k: 100 * float(np.mean([d[k] for d in per_type.values()]))) if per_type else (
        lambda k: 0.0)
    return {
        "macro_f1": mean("f1"),
        "macro_precision": mean("precision"),
        "macro_recall": mean("recall"),
        "accuracy": directed["accuracy"],
        "per_relation": per_type,
        "per_label": directed["per_class"],
        "confusion": directed["confusion"],
    }


def relation_markdown(m: dict[str, Any], source: str) -> str:
    rows = [[t, 100 * d["precision"], 100 * d["recall"], 100 * d["f1"], d["support"],
             d["wrong_direction"]] for t, d in m["per_relation"].items()]
    return "\n\n".join([
        f"# Evaluation on {source}",
        (f"Official SemEval-2010 Task 8 score (macro F1 over the relations, Other excluded, "
         f"direction taken into account) **{m['macro_f1']:.2f}** (P {m['macro_precision']:.2f}, "
         f"R {m['macro_recall']:.2f}); accuracy over all labels {m['accuracy']:.2f}. "
         f"Data code length {m['data_bits']:.0f} bits over {m['n']} examples."),
        "## Relations (a right type in the wrong direction counts as wrong)",
        md_table(["relation", "precision", "recall", "F1", "support", "wrong direction"], rows),
        "## Directed labels",
        *class_tables({"per_class": m["per_label"], "confusion": m["confusion"]}, "label"),
    ]) + "\n"
