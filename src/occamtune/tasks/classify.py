"""Text classification: a linear head on the pooled sentence vector; accuracy and per-class F1."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.tasks import register_task


class SequenceHead(nn.Module):
    """Mean-pooled (or [CLS]) encoder output -> dropout -> linear."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size, len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        return self.out(self.dropout(pooled))  # (B, L)


@register_task("classify")
class ClassifyTask:
    """Sentence classification, scored by accuracy."""

    name = "classify"
    metric = "accuracy"

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return SequenceHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"])

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(torch.log_softmax(logits.float(), dim=-1).cpu().numpy())

    def score(self, gold: list[str], pred: list[str]) -> dict[str, Any]:
        return classify_metrics(gold, pred)


def classify_metrics(gold: list[str], pred: list[str]) -> dict[str, Any]:
    """Accuracy, per-class P/R/F1, macro F1 and the confusion matrix (rows gold, columns pred)."""
    labels = sorted(set(gold) | set(pred))
    index = {lab: i for i, lab in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        conf[index[g], index[p]] += 1
    per_class = {}
    for i, lab in enumerate(labels):
        tp = conf[i, i]
        prec = tp / conf[:, i].sum() if conf[:, i].sum() else 0.0
        rec = tp / conf[i].sum() if conf[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[lab] = {"precision": float(prec), "recall": float(rec), "f1": float(f1),
                          "support": int(conf[i].sum())}
    acc = float(np.trace(conf) / conf.sum()) if conf.sum() else 0.0
    return {
        "accuracy": 100 * acc,
        "macro_f1": 100 * float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": conf.tolist()},
    }
