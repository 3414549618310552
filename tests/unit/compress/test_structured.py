"""Structured pruning really shrinks the matrices and keeps the most important heads."""

from __future__ import annotations

import pytest
import torch

from occamtune.compress import CompressContext, StructuredPruneConfig, compress
from occamtune.compress.record import record_of
from occamtune.compress.structured import head_importance
from occamtune.errors import ConfigError
from occamtune.models.families import stacks_of
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
    ops = [s["op"] for s in record_of(model).structure]
    assert ops == ["heads", "ffn", "heads", "ffn"]


def test_keeps_the_strongest_heads_exactly() -> None:
    model = tiny_task_model(layers=1)
    layer = model.encoder.encoder.layer[0]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 8:16] *= 10  # head 1 is important
    assert int(head_importance(stacks_of(model.encoder)[0], layer).argmax()) == 1
    d = 8
    kept_q = layer.attention.self.query.weight[d:2 * d].clone()
    compress(model, [StructuredPruneConfig(heads=0.75, ffn=0.0)], CompressContext())
    assert torch.equal(layer.attention.self.query.weight, kept_q)


@pytest.mark.parametrize("teacher, share_of_ce", [(True, 0.5), (False, 1.0)])
def test_recovery_learns_from_the_unpruned_model(teacher: bool, share_of_ce: float) -> None:
    """With nothing pruned the student is its teacher: the distillation loss is then only the
    (1 - alpha) = 0.5 gold-label share (KL and hidden MSE are 0); without a teacher, plain CE."""
    from torch import nn

    from occamtune.tasks import get_task

    model = tiny_task_model()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0  # train mode without noise: student and teacher outputs agree exactly
    batch = tiny_batches(n=1)[0]
    ce = float(get_task("ner").loss(model.eval()(**batch), batch))
    seen = []

    def finetune(m, *, loss_fn=None, step_hook=None, epochs=None, lr=None):
        m.train()
        seen.append(float((loss_fn or (lambda m, b: get_task("ner").loss(m(**b), b)))(m, batch)))
        return m.eval()

    compress(model, [StructuredPruneConfig(heads=0.0, ffn=0.0, teacher=teacher)],
             CompressContext(finetune=finetune))
    assert seen == [pytest.approx(share_of_ce * ce, rel=1e-5)]


@pytest.mark.parametrize("importance, kept", [("activation", False), ("magnitude", True)])
def test_activation_importance_drops_a_large_but_silent_neuron(importance: str, kept: bool) -> None:
    """Neuron 0 has the largest weights but never fires (a bias far below zero): ranked on
    calibration activations it goes first; ranked by weights it stays."""
    from tests.fixtures.tiny_models import tiny_context

    model = tiny_task_model(layers=1)
    layer = model.encoder.encoder.layer[0]
    marker = torch.full((32,), 7.0)
    with torch.no_grad():
        layer.intermediate.dense.weight[0] = 5.0  # the largest row by far
        layer.intermediate.dense.bias[0] = -1e4  # GELU(very negative) = 0 on every token
        layer.output.dense.weight[:, 0] = marker
    ctx = tiny_context(train=False)
    compress(model, [StructuredPruneConfig(heads=0.0, ffn=0.25, importance=importance, refit=False)], ctx)
    columns = layer.output.dense.weight.T  # (kept neurons, hidden)
    assert any(torch.equal(c, marker) for c in columns) is kept


def test_refit_output_makes_up_for_inputs_the_kept_ones_explain() -> None:
    """An input that is an affine function of a kept one (2 * x0 + 1) is removed; the refit puts
    its weight on x0 and the bias: the outputs stay the same."""
    from occamtune.compress.structured import refit_output, slice_linear

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g)
    x[:, 3] = 2 * x[:, 0] + 1
    old = torch.nn.Linear(4, 3)
    keep = torch.tensor([0, 1, 2])
    xa = torch.cat([x.double(), torch.ones(200, 1, dtype=torch.float64)], dim=1)
    gram = xa.T @ xa / 200
    new = slice_linear(old, keep, dim=1)
    refit_output(old, new, gram, keep, damp=0.0)
    torch.testing.assert_close(new(x[:, :3]), old(x), atol=1e-4, rtol=1e-4)
    plain = slice_linear(old, keep, dim=1)  # without the refit the outputs move
    assert (plain(x[:, :3]) - old(x)).abs().max() > 0.1


@pytest.mark.parametrize("heads, ffn", [(0.0, 0.5), (0.5, 0.0)])
def test_refit_brings_the_outputs_closer_to_the_unpruned_model(heads: float, ffn: float) -> None:
    """On the calibration batches, the pruned model's logits are nearer the unpruned model's with
    the output projections refit than without."""
    import copy

    from tests.fixtures.tiny_models import tiny_context

    model = tiny_task_model()
    ctx = tiny_context(train=False)
    batch = tiny_batches()[0]
    with torch.no_grad():
        want = model(**batch)
        errors = {}
        for refit in (False, True):
            config = StructuredPruneConfig(heads=heads, ffn=ffn, refit=refit)
            pruned = compress(copy.deepcopy(model), [config], ctx)
            errors[refit] = float((pruned(**batch) - want).pow(2).mean())
    assert errors[True] < 0.7 * errors[False]


def test_epochs_0_prunes_and_refits_without_training() -> None:
    from tests.fixtures.tiny_models import tiny_context

    calls: list = []
    ctx = tiny_context(calls=calls)
    model = compress(tiny_task_model(), [StructuredPruneConfig(heads=0.0, ffn=0.5, epochs=0)], ctx)
    assert calls == [] and model.encoder.encoder.layer[0].output.dense.in_features == 32
    with pytest.raises(ConfigError, match="epochs"):
        StructuredPruneConfig(epochs=-1)
