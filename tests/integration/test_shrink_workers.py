"""Two `occamtune shrink` worker processes cooperate on one SQLite study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SPACE = ["distill_layers=0", "ffn=0.0", "sparsity=0.0,0.5,0.7", "lowrank_energy=0.0",
         "vocab_trim=false", "bits=8,4"]


def test_two_workers_share_one_study(tmp_path, tiny_model_dir) -> None:
    from occamtune.api import train
    from occamtune.config import load_config

    run = tmp_path / "run"
    train(load_config(None, ["task=ner", f"data.path={ROOT / 'tests/fixtures/conll_tiny'}",
                             f"model.name={tiny_model_dir}", f"output={run}", "train.epochs=2",
                             "train.batch_size=4", "train.lr=3e-3", "data.max_length=32",
                             "data.stride=4"]), progress=False)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "occamtune.cli", "shrink", str(run), "--output",
         str(tmp_path / f"worker{i}"), "--storage", storage, "--study", "s", "--trials", "2",
         "--max-drop", "100", "--seed", str(i), "--quiet", "--space", *SPACE,
         *(["--no-finalize"] if i else [])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
    assert json.loads(results[0][0].strip().splitlines()[-1])["chosen_bytes"] > 0
    assert not (tmp_path / "worker1" / "shrink.json").exists()  # --no-finalize: trials only
    study = optuna.load_study(study_name="s", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"
                and "duplicate_of" not in t.user_attrs]  # (a re-proposal is reused, not counted)
    assert len(complete) == 4  # 2 each; a proposal whose pruning the other was training is
    assert all(t.user_attrs.get("deferred") or t.state.name == "WAITING"  # (queued for later)
               or "duplicate_of" in t.user_attrs for t in study.trials if t not in complete)
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # deferred, and not counted
    from occamtune.search.shrink import shrink
    from occamtune.search.space import parse_space

    final = shrink(run, tmp_path / "worker0", max_drop=100.0, budget_seconds=0.0, storage=storage,
                   study_name="s", space=parse_space(SPACE), progress=False)  # choose from all
    assert final.summary["trials"]["complete"] == len([t for t in study.trials
                                                        if t.state.name == "COMPLETE"])
