"""Every compression method on the relation and qa tasks' models (the tiny random BERT, the
relation markers added to its vocabulary): output shapes kept, the artifact reloads to the same
outputs, and vocabulary trimming keeps the markers' own rows."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from occamtune.compress import CompressContext, compress, load_artifact, save_artifact
from occamtune.config import DataConfig, ModelConfig
from occamtune.models import HeadConfig, add_task_tokens, build_model, load_tokenizer
from occamtune.tasks import get_task
from tests.fixtures.task_data import squad_json, write_relations
from tests.fixtures.tiny_models import batches_context
from tests.unit.compress.test_contract import CASES

TASKS = ("relation", "qa")


def _data(task: str, folder: Path) -> Path:
    if task == "relation":
        return write_relations(folder, "train.tsv", 24, 0)
    path = folder / "train.json"
    path.write_text(json.dumps(squad_json(6, 0)), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=TASKS)
def task_model(request, tiny_model_dir: Path, tmp_path_factory) -> dict[str, Any]:
    """The task's model, tokenizer and a few real batches of its tiny data."""
    name = request.param
    task = get_task(name)
    tok = load_tokenizer(str(tiny_model_dir), name)
    add_task_tokens(tok, name)
    dataset = task.read(_data(name, tmp_path_factory.mktemp(name)))
    labels = task.label_set(dataset)
    head = HeadConfig(task=name, labels=labels, **task.head_options(ModelConfig(), tok))
    torch.manual_seed(0)
    model = build_model(str(tiny_model_dir), head, tok).eval()
    feats = task.encode(dataset, tok, labels, DataConfig(max_length=32, stride=8))
    collate = task.collator(int(tok.pad_token_id))
    batches = [collate(feats[i:i + 6]) for i in range(0, min(len(feats), 24), 6)]
    return {"name": name, "model": model, "tokenizer": tok, "batches": batches}


def _context(setup: dict[str, Any]) -> CompressContext:
    return batches_context(setup["batches"], setup["tokenizer"], max_length=32)


def _logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch)


@pytest.mark.parametrize("method", sorted(CASES))
def test_task_contract(method: str, task_model: dict[str, Any], tmp_path: Path) -> None:
    model, batch = copy.deepcopy(task_model["model"]), task_model["batches"][0]
    before = _logits(model, batch)
    small = compress(model, [CASES[method]], _context(task_model))
    after = _logits(small, batch)
    assert after.shape == before.shape, f"{task_model['name']}/{method}: {after.shape} != {before.shape}"
    save_artifact(small, task_model["tokenizer"], tmp_path / "a", meta={"fp32_bytes": 4 * 10**5})
    loaded = load_artifact(tmp_path / "a")
    torch.testing.assert_close(_logits(loaded, batch), after, atol=2e-3, rtol=2e-3)
    if method == "vocab" and task_model["name"] == "relation":
        tok = task_model["tokenizer"]
        emb = loaded.encoder.embeddings.word_embeddings
        ids = tok.convert_tokens_to_ids(list(get_task("relation").special_tokens))
        assert len({int(emb.remap[i]) for i in ids} | {int(emb.remap[tok.unk_token_id])}) == 5
