"""Magnitude pruning: sparsity reached, masks kept while training, the cubic schedule, sparse storage."""

from __future__ import annotations

import pytest

from occamtune.compress import CompressContext, PruneConfig, compress, save_artifact
from occamtune.compress.artifact import read_occ
from occamtune.compress.prune import cubic_sparsity, prunable, sparsity_of
from tests.fixtures.tiny_models import tiny_context, tiny_task_model


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_one_shot_reaches_sparsity(scope: str) -> None:
    model = compress(tiny_task_model(), [PruneConfig(sparsity=0.7, scope=scope)], CompressContext())
    layers = prunable(model)
    assert sparsity_of(layers) == pytest.approx(0.7, abs=0.005)
    if scope == "layer":
        for m in layers.values():
            assert float((m.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.02)


def test_masks_stay_while_finetuning() -> None:
    losses: list[float] = []
    model = compress(tiny_task_model(), [PruneConfig(sparsity=0.5, epochs=2)],
                     tiny_context(calls=losses))
    assert len(losses) == 8, "finetune ran"
    for m in prunable(model).values():
        assert (m.weight[~m.weight_mask] == 0).all()
    assert sparsity_of(prunable(model)) == pytest.approx(0.5, abs=0.005)


def test_cubic_schedule_values() -> None:
    assert cubic_sparsity(0, 100, 0.8) == 0.0
    assert cubic_sparsity(75, 100, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(100, 100, 0.8) == pytest.approx(0.8)
    # halfway through the ramp: s_f (1 - 0.5^3)
    assert cubic_sparsity(37.5, 100, 0.8) == pytest.approx(0.8 * (1 - 0.125))
    values = [cubic_sparsity(t, 100, 0.8) for t in range(101)]
    assert values == sorted(values)


def test_gradual_reaches_final_sparsity_and_rises_during_training() -> None:
    seen: list[float] = []
    ctx = tiny_context()
    inner = ctx.finetune

    def spy(model, *, step_hook=None, **kw):
        def hook(step, total):
            step_hook(step, total)
            seen.append(sparsity_of(prunable(model)))
        return inner(model, step_hook=hook, **kw)

    ctx.finetune = spy
    model = compress(tiny_task_model(), [PruneConfig(sparsity=0.8, gradual=True, epochs=3)], ctx)
    assert seen[0] < 0.8 and seen == sorted(seen)
    assert sparsity_of(prunable(model)) == pytest.approx(0.8, abs=0.005)


def test_artifact_stores_pruned_weights_sparsely(tokenizer, tmp_path) -> None:
    model = compress(tiny_task_model(), [PruneConfig(sparsity=0.9)], CompressContext())
    save_artifact(model, tokenizer, tmp_path)
    manifest, _ = read_occ(tmp_path / "model.occ")
    sparse = {t["name"] for t in manifest["tensors"] if "nnz" in t}
    assert {f"encoder.{n}.weight" for n in prunable(model)} <= sparse
