"""Named-entity recognition: a token head, constrained Viterbi decoding, seqeval metrics.

Only the first sub-word of each word carries a label; predictions are made per word. Decoding
keeps to valid IOB2 sequences (an `I-X` only after `B-X` or `I-X`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.tasks import register_task


class TokenHead(nn.Module):
    """Dropout and a linear layer on each sub-word's vector, optionally joined to a word-shape
    embedding (an uncased encoder cannot see capitalisation; the shape tells it)."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        from occamtune.data.shapes import SHAPES

        self.shape = nn.Embedding(len(SHAPES), config.shape_dim) if config.shape_features else None
        extra = config.shape_dim if config.shape_features else 0
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size + extra, len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.shape is not None:  # (B, T, H) + (B, T, S) -> (B, T, H+S)
            hidden = torch.cat([hidden, self.shape(batch["shape_ids"])], dim=-1)
        return self.out(self.dropout(hidden))  # (B, T, L)


def allowed_transitions(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """IOB2 constraints: (start[L], trans[L, L]) with 0 where allowed and -inf where not."""
    n = len(labels)
    start = np.zeros(n)
    trans = np.zeros((n, n))
    for j, to in enumerate(labels):
        if not to.startswith("I-"):
            continue
        start[j] = -np.inf
        for i, frm in enumerate(labels):
            if frm[2:] != to[2:] or frm[:2] not in ("B-", "I-"):
                trans[i, j] = -np.inf
    return start, trans


def viterbi(log_probs: np.ndarray, start: np.ndarray, trans: np.ndarray) -> list[int]:
    """Best label path under the constraints. log_probs: (N, L) per-word log-probabilities."""
    n = log_probs.shape[0]
    if n == 0:
        return []
    score = start + log_probs[0]  # (L,)
    back = np.zeros((n, log_probs.shape[1]), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + trans  # (L_from, L_to)
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + log_probs[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


@register_task("ner")
class NerTask:
    """Token classification with IOB2 labels, scored by entity-level F1 (seqeval, strict)."""

    name = "ner"
    metric = "f1"

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return TokenHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per window: (n_first_subwords, L) log-probabilities, in word order."""
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [logp[b][batch["first"][b]].cpu().numpy() for b in range(logp.shape[0])]

    def word_log_probs(self, windows: list[Any], gathered: list[np.ndarray], n_words: list[int],
                       n_labels: int) -> list[np.ndarray]:
        """Assemble each sentence's (N_words, L) log-probs from the windows that own its words."""
        out = [np.zeros((n, n_labels), dtype=np.float32) for n in n_words]
        for win, lp in zip(windows, gathered):
            first_words = [w for w, f in zip(win.word_index, win.first) if f]
            for row, word in enumerate(first_words):
                if win.owned[0] <= word < win.owned[1]:
                    out[win.sentence][word] = lp[row]
        return out

    def decode(self, word_log_probs: list[np.ndarray], labels: list[str]) -> list[list[int]]:
        start, trans = allowed_transitions(labels)
        return [viterbi(lp, start, trans) for lp in word_log_probs]

    def score(self, gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
        return ner_metrics(gold, pred)


def ner_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level P/R/F1 per type, micro and macro (seqeval strict IOB2, the CoNLL standard),
    plus the token-level table (flattering: `O` dominates), labelled as such."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True,
                                   zero_division=0)
    entity = {k: {m: float(v) for m, v in d.items()} for k, d in report.items()}
    micro = entity["micro avg"]
    return {
        "f1": 100 * micro["f1-score"],
        "precision": 100 * micro["precision"],
        "recall": 100 * micro["recall"],
        "macro_f1": 100 * entity["macro avg"]["f1-score"],
        "entity": entity,
        "token_level": token_table(gold, pred),
    }


def token_table(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Per-tag token precision/recall/F1 and accuracy: written by hand because seqeval only scores
    entities and scikit-learn would be a dependency for ten lines of counting."""
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    for g_seq, p_seq in zip(gold, pred):
        for g, p in zip(g_seq, p_seq):
            n_gold[g] += 1
            n_pred[p] += 1
            tp[g] += g == p
    table = {}
    for tag in sorted(set(n_gold) | set(n_pred)):
        prec = tp[tag] / n_pred[tag] if n_pred[tag] else 0.0
        rec = tp[tag] / n_gold[tag] if n_gold[tag] else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        table[tag] = {"precision": prec, "recall": rec, "f1": f1, "support": n_gold[tag]}
    total = sum(n_gold.values())
    return {"accuracy": sum(tp.values()) / total if total else 0.0, "tags": table}
