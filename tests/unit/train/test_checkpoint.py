"""Checkpoints: never unpickled, never half-written (a kill mid-write keeps the last whole one)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from occamtune.api import train
from occamtune.config import load_config
from occamtune.errors import ConfigError


def _cfg(root: Path, data: Path, model: Path):
    return load_config(None, ["task=ner", f"data.path={data}", f"model.name={model}",
                              f"output={root / 'run'}", "train.batch_size=4", "train.lr=3e-3",
                              "train.epochs=3", "data.max_length=32", "data.stride=4",
                              "train.eval_every=2"])


class _Planted:
    """A pickle that, when loaded, creates a marker file (stands for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _interrupt(monkeypatch, when) -> None:
    from occamtune.train import loop

    calls = {"n": 0}
    original = loop.Trainer._step

    def step(self, batch):
        calls["n"] += 1
        if when(calls["n"]):
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(loop.Trainer, "_step", step)


def test_resume_never_unpickles(tmp_path, conll_tiny, tiny_model_dir, monkeypatch) -> None:
    cfg = _cfg(tmp_path, conll_tiny, tiny_model_dir)
    with monkeypatch.context() as m:
        _interrupt(m, lambda n: n == 5)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    ckpt = tmp_path / "run" / "checkpoint"
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin",
                 "scheduler.bin"):
        (ckpt / name).write_bytes(pickle.dumps(_Planted(marker)))
    train(cfg, progress=False)  # resumes, reading none of the planted files
    assert not marker.exists()


def test_a_planted_pickle_inside_the_checkpoint_is_refused(tmp_path, conll_tiny, tiny_model_dir,
                                                           monkeypatch) -> None:
    cfg = _cfg(tmp_path, conll_tiny, tiny_model_dir)
    with monkeypatch.context() as m:
        _interrupt(m, lambda n: n == 5)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    marker = tmp_path / "pwned"
    for f in (tmp_path / "run" / "checkpoint").rglob("*.pt"):
        f.write_bytes(pickle.dumps(_Planted(marker)))
    with pytest.raises(ConfigError, match="cannot be read"):
        train(cfg, progress=False)
    assert not marker.exists()


def test_a_kill_mid_checkpoint_keeps_the_previous_one_whole(tmp_path, conll_tiny, tiny_model_dir,
                                                            monkeypatch) -> None:
    from safetensors.torch import load_file

    ref = train(_cfg(tmp_path / "a", conll_tiny, tiny_model_dir), progress=False)
    ref_weights = load_file(str(ref.output / "model.safetensors"))

    cfg = _cfg(tmp_path / "b", conll_tiny, tiny_model_dir)
    saves = {"optimizer": 0}
    real_save = torch.save

    def killed_after_the_weights(obj, f, *args, **kwargs):
        # the second checkpoint dies after its model weights, while writing the optimizer
        if "optimizer" in Path(str(f)).name:
            saves["optimizer"] += 1
            if saves["optimizer"] == 2:
                raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch, "save", killed_after_the_weights)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    state = json.loads((tmp_path / "b" / "run" / "checkpoint" / "state.json").read_text())
    assert state["global_step"] == 2
    resumed = train(cfg, progress=False)
    got = load_file(str(resumed.output / "model.safetensors"))
    for key in ref_weights:
        torch.testing.assert_close(got[key], ref_weights[key], msg=key)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, conll_tiny,
                                                                tiny_model_dir, monkeypatch) -> None:
    cfg = _cfg(tmp_path, conll_tiny, tiny_model_dir)
    with monkeypatch.context() as m:
        _interrupt(m, lambda n: n == 1)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert not (tmp_path / "run" / "checkpoint").exists()
    run = train(cfg, progress=False)  # same command: not "exists and is not empty"
    assert "f1" in run.metrics["test"]


def test_a_run_killed_in_its_test_evaluation_finishes(tmp_path, conll_tiny, tiny_model_dir,
                                                      monkeypatch) -> None:
    from occamtune.train import run as run_module

    cfg = _cfg(tmp_path, conll_tiny, tiny_model_dir)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(run_module, "evaluate_split", killed)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
    other = load_config(None, [f"data.path={conll_tiny}", f"output={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match="--overwrite"):  # another run's config: not resumed
        train(other, progress=False)
    run = train(cfg, progress=False)
    assert (run.output / "eval_test.json").is_file()
    assert not (run.output / "checkpoint").exists()
