"""Distillation: which layers the student keeps, the loss, a frozen teacher."""

from __future__ import annotations

import copy

import pytest
import torch

from occamtune.compress import DistillConfig, compress
from occamtune.compress.distill import distill_loss, pick_layers
from occamtune.compress.record import record_of
from occamtune.errors import ConfigError
from tests.fixtures.tiny_models import tiny_batches, tiny_context, tiny_task_model


@pytest.mark.parametrize(("n", "k", "pick", "expected"), [
    (6, 3, "spread", [1, 3, 5]), (6, 2, "spread", [2, 5]), (6, 1, "spread", [5]),
    (6, 4, "spread", [0, 2, 3, 5]), (4, 2, "bottom", [0, 1]), (4, 2, "top", [2, 3]),
])
def test_pick_layers(n: int, k: int, pick: str, expected: list[int]) -> None:
    assert pick_layers(n, k, pick) == expected


def test_student_starts_from_the_picked_teacher_layers_and_trains() -> None:
    teacher = tiny_task_model(layers=4)
    before = copy.deepcopy(teacher.state_dict())
    losses: list[float] = []
    student = compress(teacher, [DistillConfig(layers=2, epochs=2)], tiny_context(calls=losses))
    assert len(student.encoder.encoder.layer) == 2
    assert student.encoder.config.num_hidden_layers == 2
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    for k, v in teacher.state_dict().items():  # the teacher is untouched
        assert torch.equal(v, before[k]), k
    assert record_of(student).log()[-1]["kept_layers"] == [1, 3]


def test_student_more_layers_than_teacher_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"layers must be in \[1, 1\]"):
        compress(tiny_task_model(layers=2), [DistillConfig(layers=2)], tiny_context())


def test_distill_after_a_step_that_recorded_changes_by_layer_is_refused() -> None:
    """Those changes name teacher layers; the artifact, rebuilt with the student's layers,
    could not replay them: distill must come first."""
    from occamtune.compress import StructuredPruneConfig

    configs = [StructuredPruneConfig(heads=0.5, ffn=0.5, epochs=0), DistillConfig(layers=1)]
    with pytest.raises(ConfigError, match=r"put distill first .*\(ffn, heads\)"):
        compress(tiny_task_model(layers=2), configs, tiny_context())


def test_loss_is_ce_when_alpha_zero_and_zero_kl_for_identical_logits() -> None:
    batch = tiny_batches(n=1)[0]
    keep = batch["labels"] != -100
    logits, gold = torch.randn(4, 12, 5)[keep], batch["labels"][keep]
    kl_only = distill_loss(logits, logits, gold, DistillConfig(alpha=1.0))
    assert float(kl_only) == pytest.approx(0.0, abs=1e-6)
    ce = distill_loss(logits, logits * 3, gold, DistillConfig(alpha=0.0))
    expected = torch.nn.functional.cross_entropy(logits, gold)
    assert float(ce) == pytest.approx(float(expected))
