"""Run a task model over encoded examples, turn its outputs into labels and metrics, and load a
model folder for prediction (`Predictor`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune.errors import ConfigError, OutputError
from occamtune.io import atomic_write_text
from occamtune.tasks import Predictions, get_task
from occamtune.tasks.base import encode_for

__all__ = ["Predictions", "Predictor", "evaluate", "predict", "run_model", "throughput",
           "write_eval"]


def _task(model: Any) -> Any:
    return get_task(model.head_config.task)


def run_model(model: nn.Module, features: list[Any], batch_size: int = 64) -> list[np.ndarray]:
    """The task's gathered outputs for every feature, in input order. Batches are formed from
    length-sorted features so that padding is minimal."""
    task = _task(model)
    collate = task.collator(_pad_id(model))
    order = sorted(range(len(features)), key=lambda i: task.feature_length(features[i]))
    out: list[np.ndarray | None] = [None] * len(features)
    model.eval()
    with torch.inference_mode():  # logits -> per-feature log-probs
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([features[i] for i in idx])
            for i, row in zip(idx, task.gather(model(**batch), batch)):
                out[i] = row
    return out  # type: ignore[return-value]


def predict(model: nn.Module, dataset: Any, features: list[Any], batch_size: int = 64) -> Predictions:
    """Labels for every example of `dataset` (whose `features` were encoded from it)."""
    if _task(model).generative:
        from occamtune.models.generation import predict_generated

        return predict_generated(model, dataset, features, batch_size)
    gathered = run_model(model, features, batch_size)
    return _task(model).decode(gathered, dataset, features, model.head_config.labels)


def evaluate(model: nn.Module, dataset: Any, features: list[Any], batch_size: int = 64) -> dict[str, Any]:
    """Task metrics of `model` on a labelled data set, plus the data code length in bits."""
    task = _task(model)
    preds = predict(model, dataset, features, batch_size)
    gold = task.gold(dataset)
    metrics = task.score(gold, preds.labels)
    metrics["data_bits"] = task.data_bits(gold, preds, model.head_config.labels)
    metrics["n"] = len(gold)
    if task.generative:  # the scores depend on them, and they may differ from the run's
        from occamtune.config import DECODING

        metrics["decoding"] = {k: model.head_config.extra[k] for k in DECODING}
    return metrics


def write_eval(model: nn.Module, dataset: Any, features: list[Any], folder: Path, name: str,
               source: str, must_write: bool = True) -> dict[str, Any]:
    """Evaluate on a data set; write `eval_<name>.json` and `eval_<name>.md` into `folder`.

    With `must_write` False, a folder that cannot be written (e.g. a read-only model) costs only
    the reports: the metrics are returned with `not_written` saying why, not lost in an error.
    """
    start = time.perf_counter()
    metrics = evaluate(model, dataset, features)
    metrics["seconds"] = time.perf_counter() - start
    metrics["file"] = source
    try:
        atomic_write_text(Path(folder) / f"eval_{name}.json", json.dumps(metrics, indent=2))
        atomic_write_text(Path(folder) / f"eval_{name}.md", _task(model).render(metrics, source))
    except OutputError as exc:
        if must_write:
            raise
        metrics["not_written"] = str(exc)
    return metrics


def _pad_id(model: nn.Module) -> int:
    if hasattr(model, "pad_id"):  # e.g. an ONNX Runtime session (occamtune.export.OnnxTaskModel)
        return int(model.pad_id)
    return int(getattr(model.encoder.config, "pad_token_id", 0) or 0)


def throughput(model: Any, features: list[Any], batch_size: int, warmup: int = 1) -> float:
    """Examples per second of `model` over `features` at `batch_size` (after `warmup` batches);
    for a generative task, examples whose text is generated in full per second."""
    run: Any = run_model
    if _task(model).generative:
        from occamtune.models.generation import generate_texts as run
    if warmup:
        run(model, features[: batch_size * warmup], batch_size)
    start = time.perf_counter()
    run(model, features, batch_size)
    return len(features) / (time.perf_counter() - start)


# how the run read its files: the columns, the encoding, the label names (its sizes come from
# occamtune.json, which every format of the model carries)
READING = ("label_column", "encoding", "input_field", "label_field", "labels")


def _with_reading_settings(data: Any, folder: Path) -> Any:
    """`data` with the run's own file-reading settings from its `config.yaml`, where the folder
    has one: a file in the training data's format (a table's columns, parallel `.de`/`.en`
    files) then reads as the training files did."""
    import dataclasses

    from occamtune.config import load_config

    recorded = folder / "config.yaml"
    if not recorded.is_file():
        return data
    run = load_config(recorded).data
    return dataclasses.replace(data, **{k: getattr(run, k) for k in READING})


def set_decoding(model: Any, decoding: dict[str, Any] | None, folder: str | Path) -> dict[str, Any]:
    """Decode with `decoding` (a generator's `generate` settings such as `num_beams`, checked by
    `config.decoding_settings`) instead of the model's own: in memory, and in what is saved from
    it (a compressed artifact keeps its model's settings). None or {}: the model's own.
    `folder` names the model where one that writes no text refuses them. Returns the settings
    set, parsed ({} for none)."""
    from occamtune.config import decoding_settings

    if not decoding:
        return {}
    task = get_task(model.head_config.task)
    if not task.generative:
        raise ConfigError(f"decoding settings ({', '.join(decoding)}) are for generated text; "
                          f"{folder} is a {task.name} model")
    settings = decoding_settings(decoding)
    model.head_config.extra.update(settings)
    return settings


class Predictor:
    """A loaded model folder (any format) ready for prediction and evaluation.

    `occamtune.load("runs/ner").predict(["some text"])`
    """

    def __init__(self, folder: str | Path, decoding: dict[str, Any] | None = None) -> None:
        """`decoding`: a generator's decoding settings for this use instead of its run's
        (`generate` keys such as `num_beams`, `no_repeat_ngram_size`)."""
        from occamtune.models import check_max_length, load_model

        self.folder = Path(folder)
        self.model, self.tokenizer, self.meta = load_model(folder)
        self.task = get_task(self.meta.head.task)
        self.data = _with_reading_settings(self.meta.data_config(), self.folder)
        check_max_length(self.model, self.data.max_length, folder)
        set_decoding(self.model, decoding, self.folder)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def encode(self, dataset: Any) -> list[Any]:
        """Features of `dataset`, encoded as the training data was."""
        return encode_for(self.task, dataset, self.tokenizer, self.labels, self.data,
                          self.model.head_config)

    def run(self, dataset: Any) -> Predictions:
        """Predictions for every example of `dataset`."""
        return predict(self.model, dataset, self.encode(dataset))

    def evaluate_file(self, path: str | Path, name: str | None = None, write: bool = True) -> dict:
        """Metrics on a labelled file; written into the model folder as eval_<name>.json/.md."""
        dataset = self.task.read(path, self.data)
        self.task.check_labels(dataset, self.labels)
        features = self.encode(dataset)
        if write:
            return write_eval(self.model, dataset, features, self.folder, name or Path(path).stem,
                              str(path), must_write=False)
        return evaluate(self.model, dataset, features)

    def predict(self, inputs: list[Any]) -> list[dict[str, Any]]:
        """One result per raw input (a text): the task's labels, spans and scores."""
        dataset = self.task.dataset_from_inputs(inputs)
        preds = self.run(dataset)
        return self.task.format_predictions(inputs, dataset, preds, self.labels)

    def stream(self, text: str) -> Any:
        """Generative tasks: the generated text of `text`, piece by piece as it is written."""
        if not self.task.generative:
            raise ConfigError(f"streaming is for generated text; a {self.task.name} model "
                              "answers whole (predict)")
        from occamtune.models.generation import stream_text

        [feature] = self.encode(self.task.dataset_from_inputs([text]))
        return stream_text(self.model, feature)

    def annotate_file(self, path: str | Path) -> str:
        """A file of the task's format with a predicted label column added."""
        return self.task.annotate_file(path, self.run)
