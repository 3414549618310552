"""A task defined only in this file runs through every verb: the task protocol is complete.

The toy task reads `answer|text` lines (a format no reader of the package knows), puts a
max-pooled head on the encoder, scores "hit rate", and formats its own predictions and report.
Train, evaluate, predict, compress, export, serve and shrink run on it with no other module
changed; the task is registered for these tests and removed afterwards.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import occamtune
from occamtune.errors import DataError
from occamtune.tasks import TASKS, Predictions, Task, register_task
from tests.fixtures.task_runs import shrink_two_trials


@dataclass(frozen=True)
class Line:
    text: str
    answer: str | None
    line: int


@dataclass
class Lines:
    items: list[Line]
    path: str

    def with_items(self, items: list[Line]) -> Lines:
        return Lines(list(items), self.path)


class MaxPoolHead(nn.Module):
    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden_size, len(config.labels))

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["attention_mask"].unsqueeze(-1).bool()  # (B, T, 1)
        return self.out(hidden.masked_fill(~mask, -1e4).max(1).values)  # (B, L)


class ToyTask(Task):
    name = "toy"
    metric = "hit_rate"
    headline = ("hit_rate",)
    description = "answer|text lines, scored by hit rate"

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Lines:
        items = []
        for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            answer, sep, text = raw.partition("|")
            if not sep:
                raise DataError(path, "expected answer|text", line=number)
            items.append(Line(text, answer, number))
        return Lines(items, str(path))

    def label_set(self, dataset: Lines) -> list[str]:
        return sorted({x.answer for x in dataset.items})

    def example_labels(self, example: Line) -> list[str]:
        return [] if example.answer is None else [example.answer]

    def encode(self, dataset: Lines, tokenizer: Any, labels: list[str], data: Any) -> list[dict]:
        index = {lab: i for i, lab in enumerate(labels)}
        out = []
        for x in dataset.items:
            ids = tokenizer(x.text, truncation=True, max_length=data.max_length)["input_ids"]
            out.append({"input_ids": ids, **({"label": index[x.answer]} if x.answer else {})})
        return out

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return MaxPoolHead(config, hidden_size)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"])

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return list(torch.log_softmax(logits.float(), -1).numpy())

    def decode(self, gathered: list[np.ndarray], dataset: Lines, features: list[Any],
               labels: list[str]) -> Predictions:
        return Predictions([labels[int(g.argmax())] for g in gathered], gathered)

    def gold(self, dataset: Lines) -> list[Any]:
        return [x.answer for x in dataset.items]

    def score(self, gold: list[Any], pred: list[Any]) -> dict[str, Any]:
        return {"hit_rate": 100.0 * float(np.mean([g == p for g, p in zip(gold, pred)]))}

    def render(self, metrics: dict[str, Any], source: str) -> str:
        return f"# Toy on {source}\n\nhit rate {metrics['hit_rate']:.1f}\n"

    def dataset_from_inputs(self, inputs: list[Any]) -> Lines:
        return Lines([Line(t, None, i + 1) for i, t in enumerate(inputs)], "<input>")

    def format_predictions(self, inputs: list[Any], dataset: Lines, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        return [{"text": t, "answer": a} for t, a in zip(inputs, preds.labels)]


@pytest.fixture(scope="module")
def toy_task():
    register_task(ToyTask)
    yield TASKS["toy"]
    del TASKS["toy"]


def _write(folder: Path, name: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        good = rng.random() < 0.5
        words = rng.sample(["great", "fun", "good"] if good else ["bad", "boring", "not"], 2)
        rows.append(f"{'yes' if good else 'no'}|the film is {' '.join(words)} .")
    (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def toy_run(toy_task, tmp_path_factory, tiny_model_dir) -> Path:
    data = tmp_path_factory.mktemp("toy-data")
    for name, n, seed in (("train.txt", 48, 1), ("dev.txt", 16, 2), ("test.txt", 16, 3)):
        _write(data, name, n, seed)
    out = tmp_path_factory.mktemp("toy") / "run"
    cfg = occamtune.load_config(None, ["task=toy", f"data.path={data}", f"model.name={tiny_model_dir}",
                                       f"output={out}", "train.epochs=4", "train.batch_size=8",
                                       "train.lr=3e-3", "data.max_length=16"])
    run = occamtune.train(cfg, progress=False)
    assert "hit_rate" in run.metrics["test"] and (out / "eval_test.md").read_text().startswith("# Toy")
    return out


def test_train_evaluate_predict(toy_run: Path) -> None:
    from occamtune.cli import main

    metrics = occamtune.evaluate(toy_run, split="dev")
    assert 0.0 <= metrics["hit_rate"] <= 100.0 and metrics["n"] == 16
    [res] = occamtune.predict(toy_run, ["the film is great fun ."])
    assert res["answer"] in ("yes", "no")
    assert main(["evaluate", str(toy_run), "--split", "test"]) == 0


def test_compress_export_and_serve(toy_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from occamtune.serve.app import create_app

    result = occamtune.compress_run(toy_run, "prune(sparsity=0.5), quantize(bits=4)",
                                    tmp_path / "small", progress=False)
    assert result["sizes"]["model_occ"] < result["fp32_bytes"] and "hit_rate" in result["test"]
    small = occamtune.load(tmp_path / "small")
    texts = ["the film is bad .", "the film is good fun ."]
    assert [r["answer"] for r in small.predict(texts)] == [
        r["answer"] for r in occamtune.load(tmp_path / "small").predict(texts)]
    occamtune.export(tmp_path / "small", tmp_path / "onnx", exporter="torchscript")
    assert len(occamtune.predict(tmp_path / "onnx", texts)) == 2
    client = TestClient(create_app(tmp_path / "small"))
    assert client.get("/health").json()["task"] == "toy"
    got = client.post("/predict", json={"texts": texts})
    assert got.status_code == 200 and [p["answer"] for p in got.json()["predictions"]] == [
        r["answer"] for r in small.predict(texts)]


def test_shrink(toy_run: Path, tmp_path: Path) -> None:
    summary = shrink_two_trials(toy_run, tmp_path / "s")
    assert summary["metric"] == "hit_rate"
