"""The training loop on two CPU processes (torchrun; Accelerate joins the process group)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_processes_share_the_batches(tmp_path: Path, tiny_model_dir: Path, conll_tiny: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "run"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "occamtune.cli", "train",
           "--task", "ner", "--data", str(conll_tiny), "--model", str(tiny_model_dir), "--output", str(out),
           "--quiet", "--epochs", "2", "train.batch_size=4", "data.max_length=32"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(printed) == 1  # only rank 0 reports and writes
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    # 24 training sentences / batch 4 = 6 batches per epoch, split over 2 processes: 3 steps each
    assert max(steps) == 6 and 3 in steps
    assert (out / "model.safetensors").is_file() and (out / "eval_test.json").is_file()
