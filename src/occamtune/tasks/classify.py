"""Text classification: a linear head on the pooled sentence vector; accuracy and per-class F1."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.tasks.base import Predictions, Task, pool, register_task
from occamtune.tasks.tables import md_table


class SequenceHead(nn.Module):
    """Mean-pooled (or [CLS], or last-token) encoder output -> dropout -> linear."""

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(hidden_size, len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = pool(hidden, batch["attention_mask"], self.pooling)  # (B, H)
        return self.out(self.dropout(pooled))  # (B, L)


@register_task
class ClassifyTask(Task):
    """Sentence classification, scored by accuracy.

    Reads TSV / CSV (a header naming the text and label columns), JSON lines or Parquet (`text`,
    `label`, as `datasets` writes them), a `datasets` save_to_disk folder, or `LABEL TEXT` lines; a text longer than `data.max_length` sub-words is cut there.
    """

    name = "classify"
    metric = "accuracy"
    headline = ("accuracy", "macro_f1")
    description = "text classification (TSV, CSV, JSON lines), scored by accuracy"

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Any:
        """A TSV / CSV / `LABEL TEXT` file or a table (JSON lines, Parquet, a `datasets` folder)."""
        from occamtune.config import DataConfig
        from occamtune.data.text import Fields, read_text

        data = data or DataConfig()
        return read_text(path, data.encoding, Fields(data.input_field, data.label_field,
                                                     data.labels))

    def label_set(self, dataset: Any) -> list[str]:
        return sorted({e.label for e in dataset.items})

    def example_labels(self, example: Any) -> list[str]:
        return [] if example.label is None else [example.label]

    def encode(self, dataset: Any, tokenizer: Any, labels: list[str], data: Any,
               head: Any = None) -> list[Any]:
        from occamtune.data.encode import encode_texts

        index = {lab: i for i, lab in enumerate(labels)}
        feats = encode_texts([e.text for e in dataset.items], tokenizer, data.max_length)
        for feat, ex in zip(feats, dataset.items):
            if ex.label is not None:
                feat["label"] = index[ex.label]
        return feats

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return SequenceHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"])

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(torch.log_softmax(logits.float(), dim=-1).cpu().numpy())

    def decode(self, gathered: list[np.ndarray], dataset: Any, features: list[Any],
               labels: list[str]) -> Predictions:
        return Predictions([labels[int(lp.argmax())] for lp in gathered], gathered)

    def gold(self, dataset: Any) -> list[Any]:
        return [e.label for e in dataset.items]

    def score(self, gold: list[str], pred: list[str]) -> dict[str, Any]:
        return classify_metrics(gold, pred)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        return classify_markdown(metrics, source)

    def dataset_from_inputs(self, inputs: list[Any]) -> Any:
        from occamtune.data.text import TextDataset, TextExample

        return TextDataset([TextExample(t, None, i + 1) for i, t in enumerate(inputs)], "<input>")

    def format_predictions(self, inputs: list[Any], dataset: Any, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        return [{"text": t, "label": lab, "score": round(float(np.exp(lp.max())), 4),
                 "probs": {c: round(float(np.exp(v)), 4) for c, v in zip(labels, lp)}}
                for t, lab, lp in zip(inputs, preds.labels, preds.log_probs)]

    def probe_vectors(self, batches: Iterable[tuple[list[int], torch.Tensor, dict]],
                      features: list[Any], dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Mean-pooled vector of each text, (1, H), and its label."""
        xs: list[np.ndarray] = [np.zeros(0)] * len(features)
        for idx, hidden, batch in batches:
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
            for row, i in enumerate(idx):
                xs[i] = pooled[row:row + 1].numpy()
        return xs, [np.array([f["label"]], dtype=np.int64) for f in features]


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


def class_tables(m: dict[str, Any], first: str = "class") -> list[str]:
    """The per-class P/R/F1 table and the confusion matrix of `classify_metrics`, in Markdown."""
    rows = [[c, 100 * d["precision"], 100 * d["recall"], 100 * d["f1"], d["support"]]
            for c, d in m["per_class"].items()]
    conf = m["confusion"]
    conf_rows = [[f"**{g}**", *row] for g, row in zip(conf["labels"], conf["matrix"])]
    return [md_table([first, "precision", "recall", "F1", "support"], rows),
            "## Confusion matrix (rows: gold, columns: predicted)",
            md_table(["gold \\ pred", *conf["labels"]], conf_rows)]


def classify_markdown(m: dict[str, Any], source: str) -> str:
    return "\n\n".join([
        f"# Evaluation on {source}",
        (f"Accuracy **{m['accuracy']:.2f}**; macro F1 {m['macro_f1']:.2f}. "
         f"Data code length {m['data_bits']:.0f} bits over {m['n']} examples."),
        *class_tables(m),
    ]) + "\n"
