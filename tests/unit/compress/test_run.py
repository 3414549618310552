"""The compression context of a trained run: its fine-tunes use the run's settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from occamtune.compress.run import make_context
from occamtune.config import RunConfig, TrainConfig


@pytest.mark.parametrize("head_lr", [1e-3, None])
def test_a_methods_own_learning_rate_scales_the_heads_with_it(monkeypatch, head_lr) -> None:
    from occamtune.compress import run

    seen = []
    monkeypatch.setattr(run, "fit_model", lambda model, splits, cfg, **kw: seen.append(kw["train_cfg"])
                        or SimpleNamespace(model=model))
    cfg = RunConfig(train=TrainConfig(lr=2e-4, head_lr=head_lr, ema=0.99, epochs=3))
    ctx = make_context(cfg, {"train": SimpleNamespace(features=[])}, progress=False)
    ctx.finetune("model", lr=2e-5, epochs=1)  # quantization-aware training: a tenth of the rate
    ctx.finetune("model")  # distillation, recovery: the run's own settings
    tenth, own = seen
    assert (tenth.lr, tenth.epochs, tenth.ema) == (2e-5, 1, 0.0)
    assert (own.lr, own.epochs, own.ema, own.head_lr) == (2e-4, 3, 0.0, head_lr)
    assert tenth.head_lr == (pytest.approx(1e-4) if head_lr else None)
