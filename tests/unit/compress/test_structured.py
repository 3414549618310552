"""Structured pruning really shrinks the matrices and keeps the most important heads."""

from __future__ import annotations

import torch

from occamtune.compress import CompressContext, StructuredPruneConfig, compress
from occamtune.compress.structured import head_importance
from tests.fixtures.tiny_models import tiny_batches, tiny_task_model


def test_linear_shapes_shrink() -> None:
    model = compress(tiny_task_model(), [StructuredPruneConfig(heads=0.5, ffn=0.25)], CompressContext())
    for layer in model.encoder.encoder.layer:
        att = layer.attention.self
        assert att.num_attention_heads == 2 and att.query.weight.shape == (16, 32)
        assert layer.attention.output.dense.weight.shape == (32, 16)
        assert layer.intermediate.dense.weight.shape == (48, 32)
        assert layer.output.dense.weight.shape == (32, 48)
    assert model(**tiny_batches(n=1)[0]).shape == (4, 12, 5)
    ops = [s["op"] for s in model.occam_structure]
    assert ops == ["heads", "ffn", "heads", "ffn"]


def test_keeps_the_strongest_heads_exactly() -> None:
    model = tiny_task_model(layers=1)
    layer = model.encoder.encoder.layer[0]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 8:16] *= 10  # head 1 is important
    assert int(head_importance(layer).argmax()) == 1
    d = 8
    kept_q = layer.attention.self.query.weight[d:2 * d].clone()
    compress(model, [StructuredPruneConfig(heads=0.75, ffn=0.0)], CompressContext())
    assert torch.equal(layer.attention.self.query.weight, kept_q)
