"""Run a task model over encoded examples and turn its outputs into labels and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune.tasks import get_task


@dataclass
class Predictions:
    """Per sentence (NER) or per text (classify): label names and log-probabilities.

    For NER, `labels[i]` is one tag per word and `log_probs[i]` is (N_words, L); for
    classification, `labels[i]` is one label and `log_probs[i]` is (L,).
    """

    labels: list[Any]
    log_probs: list[np.ndarray]


def run_model(model: nn.Module, features: list[Any], batch_size: int = 64) -> list[np.ndarray]:
    """The task's gathered outputs for every feature, in input order. Batches are formed from
    length-sorted features so that padding is minimal."""
    from occamtune.data.encode import Collator

    task = get_task(model.head_config.task)
    collate = Collator(pad_id=_pad_id(model))
    order = sorted(range(len(features)), key=lambda i: len(_ids(features[i])))
    out: list[np.ndarray | None] = [None] * len(features)
    model.eval()
    with torch.inference_mode():  # (B, T, L) or (B, L) logits -> per-example log-probs
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([features[i] for i in idx])
            for i, row in zip(idx, task.gather(model(**batch), batch)):
                out[i] = row
    return out  # type: ignore[return-value]


def predict(model: nn.Module, dataset: Any, features: list[Any], batch_size: int = 64) -> Predictions:
    """Labels for every sentence / text of `dataset` (whose `features` were encoded from it)."""
    task = get_task(model.head_config.task)
    labels = model.head_config.labels
    gathered = run_model(model, features, batch_size)
    if task.name == "ner":
        n_words = [len(s.words) for s in dataset.sentences]
        word_lp = task.word_log_probs(features, gathered, n_words, len(labels))
        paths = task.decode(word_lp, labels)
        return Predictions([[labels[i] for i in p] for p in paths], word_lp)
    return Predictions([labels[int(lp.argmax())] for lp in gathered], gathered)


def gold_labels(dataset: Any) -> list[Any]:
    if hasattr(dataset, "sentences"):
        return [s.labels for s in dataset.sentences]
    return [e.label for e in dataset.examples]


def evaluate(model: nn.Module, dataset: Any, features: list[Any], batch_size: int = 64) -> dict[str, Any]:
    """Task metrics of `model` on a labelled data set, plus the data code length in bits."""
    task = get_task(model.head_config.task)
    preds = predict(model, dataset, features, batch_size)
    gold = gold_labels(dataset)
    metrics = task.score(gold, preds.labels)
    metrics["data_bits"] = data_bits(gold, preds.log_probs, model.head_config.labels)
    metrics["n"] = len(gold)
    return metrics


def data_bits(gold: list[Any], log_probs: list[np.ndarray], labels: list[str]) -> float:
    """Sum over the evaluation set of -log2 p(gold label): the data part of a two-part code."""
    index = {lab: i for i, lab in enumerate(labels)}
    total = 0.0
    for g, lp in zip(gold, log_probs):
        if isinstance(g, list):
            total -= float(sum(lp[t, index[tag]] for t, tag in enumerate(g)))
        else:
            total -= float(lp[index[g]])
    return total / np.log(2)


def _pad_id(model: nn.Module) -> int:
    if hasattr(model, "pad_id"):  # e.g. an ONNX Runtime session (occamtune.export.OnnxTaskModel)
        return int(model.pad_id)
    return int(getattr(model.encoder.config, "pad_token_id", 0) or 0)


def _ids(feature: Any) -> list[int]:
    return feature["input_ids"] if isinstance(feature, dict) else feature.input_ids


def throughput(model: Any, features: list[Any], batch_size: int, warmup: int = 1) -> float:
    """Examples per second of `model` over `features` at `batch_size` (after `warmup` batches)."""
    import time

    if warmup:
        run_model(model, features[: batch_size * warmup], batch_size)
    start = time.perf_counter()
    run_model(model, features, batch_size)
    return len(features) / (time.perf_counter() - start)
