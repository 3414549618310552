"""The training loop on a tiny random model: it learns, stops early, and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occamtune.api import train
from occamtune.config import load_config
from occamtune.train.loop import param_groups


def _cfg(tmp_path: Path, data: Path, model: Path, *extra: str, task: str = "ner"):
    return load_config(None, [f"task={task}", f"data.path={data}", f"model.name={model}",
                              f"output={tmp_path / 'run'}", "train.batch_size=4", "train.lr=3e-3",
                              "train.epochs=4", "data.max_length=32", "data.stride=4", *extra])


def test_training_lowers_loss_and_writes_the_run(tmp_path, conll_tiny, tiny_model_dir) -> None:
    run = train(_cfg(tmp_path, conll_tiny, tiny_model_dir, "train.epochs=8"), progress=False)
    out = tmp_path / "run"
    for name in ("model.safetensors", "config.json", "occamtune.json", "config.yaml",
                 "metrics.jsonl", "eval_test.json", "eval_test.md", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint").exists()
    losses = [r["loss"] for r in map(__import__("json").loads, (out / "metrics.jsonl").read_text().splitlines())
              if "loss" in r]
    assert losses[-1] < losses[0]
    assert "f1" in run.metrics["test"] and run.train_sents_per_s > 0


def test_existing_output_needs_overwrite(tmp_path, conll_tiny, tiny_model_dir) -> None:
    from occamtune.errors import ConfigError

    train(_cfg(tmp_path, conll_tiny, tiny_model_dir, "train.epochs=1"), progress=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        train(_cfg(tmp_path, conll_tiny, tiny_model_dir, "train.epochs=1"), progress=False)
    train(_cfg(tmp_path, conll_tiny, tiny_model_dir, "train.epochs=1", "overwrite=true"), progress=False)


@pytest.mark.parametrize("ema", ["0", "0.9"])
def test_resume_gives_the_same_weights(tmp_path, conll_tiny, tiny_model_dir, monkeypatch, ema) -> None:
    from safetensors.torch import load_file

    from occamtune.train import loop

    extra = ("train.eval_every=2", f"train.ema={ema}")
    full = train(_cfg(tmp_path / "a", conll_tiny, tiny_model_dir, *extra), progress=False)
    ref = load_file(str(full.output / "model.safetensors"))

    calls = {"n": 0}
    original = loop.Trainer._step

    def crash_after_five(self, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(loop.Trainer, "_step", crash_after_five)
    cfg = _cfg(tmp_path / "b", conll_tiny, tiny_model_dir, *extra)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert (tmp_path / "b" / "run" / "checkpoint" / "state.json").is_file()
    monkeypatch.setattr(loop.Trainer, "_step", original)
    if ema == "0":  # the checkpoint has no average to resume with train.ema on
        from occamtune.errors import ConfigError

        with pytest.raises(ConfigError, match="without train.ema"):
            train(_cfg(tmp_path / "b", conll_tiny, tiny_model_dir, "train.eval_every=2", "train.ema=0.9"),
                  progress=False)
    resumed = train(cfg, progress=False)  # same command again: resumes
    got = load_file(str(resumed.output / "model.safetensors"))
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], msg=key)


def test_ema_update_warms_up_then_keeps_the_decay() -> None:
    from occamtune.train.loop import ema_update

    avg, update = [torch.zeros(2)], ema_update(0.5)
    update(avg, [torch.ones(2)], torch.tensor(0))  # keeps min(0.5, 1/10) of the average
    torch.testing.assert_close(avg[0], torch.full((2,), 0.9))
    update(avg, [torch.ones(2) * 2], torch.tensor(100))  # keeps 0.5
    torch.testing.assert_close(avg[0], torch.full((2,), 1.45))


def test_ema_weights_are_the_ones_kept(tmp_path, conll_tiny, tiny_model_dir, monkeypatch) -> None:
    """With train.ema, the weights evaluated on dev and kept are the moving average's."""
    from occamtune.train import loop

    raw, averaged = [], []
    original = loop.Trainer._evaluate

    def evaluate(self):
        raw.append({k: v.clone() for k, v in self.acc.unwrap_model(self.model).state_dict().items()})
        averaged.append({k: v.clone() for k, v in self.ema.module.state_dict().items()})
        original(self)

    monkeypatch.setattr(loop.Trainer, "_evaluate", evaluate)
    run = train(_cfg(tmp_path, conll_tiny, tiny_model_dir, "train.ema=0.9", "train.epochs=3",
                     "train.patience=5"), progress=False)
    kept = run.model.state_dict()

    def same(a: dict) -> bool:
        return all(torch.equal(kept[k], a[k]) for k in a)

    assert len(averaged) == 3
    assert any(same(a) for a in averaged)
    assert not any(same(r) for r in raw)


def test_no_weight_decay_on_bias_and_layernorm() -> None:
    from torch import nn

    model = nn.Sequential()
    model.add_module("dense", nn.Linear(3, 3))
    model.add_module("LayerNorm", nn.LayerNorm(3))
    groups = param_groups(model, 0.01, None, 1e-3)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert len(decayed) == 1 and decayed[0] is model.dense.weight


def test_sgd_and_cosine_train_classification(tmp_path, sst_tiny, tiny_model_dir) -> None:
    cfg = _cfg(tmp_path, sst_tiny, tiny_model_dir, "train.optimizer=sgd", "train.schedule=cosine",
               "train.lr=0.05", task="classify")
    run = train(cfg, progress=False)
    assert 0 <= run.metrics["test"]["accuracy"] <= 100
    assert run.metrics["test"]["confusion"]["matrix"]


def test_max_length_past_the_positions_is_refused_before_training(tmp_path, conll_tiny,
                                                                  tiny_model_dir) -> None:
    from occamtune.errors import ConfigError

    cfg = _cfg(tmp_path, conll_tiny, tiny_model_dir, "data.max_length=100000", "data.stride=8")
    with pytest.raises(ConfigError, match="128 positions"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
