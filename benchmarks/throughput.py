"""Training throughput, occamtune against the HF Trainer recipe, measured interleaved.

    python -m benchmarks.throughput --task ner --steps 80 --rounds 2

The full runs of vs_hf.py report throughput too, but they last long enough for the machine's load
to change between them. Here each round trains both sides for the same number of steps (same
model, batch 32, each side with its own recipe as in vs_hf.py), one after the other, and the ratio of medians is reported, so a busy
neighbour slows both alike. Writes results/throughput_<task>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(task: str, side: str, steps: int, workdir: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.vs_hf", "--task", task, "--side", side, "--limit", str(steps),
           "--workdir", workdir]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", choices=["ner", "classify"], default="ner")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "throughput"))
    args = p.parse_args()
    runs: dict[str, list[float]] = {"hf": [], "occamtune": []}
    for r in range(args.rounds):
        for side in ("hf", "occamtune") if r % 2 == 0 else ("occamtune", "hf"):
            res = one(args.task, side, args.steps, args.workdir)
            runs[side].append(res["train_sents_per_s"])
            print(f"round {r + 1} {side}: {res['train_sents_per_s']:.1f} sents/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {"task": args.task, "steps": args.steps, "rounds": args.rounds, "runs": runs,
           "occamtune_train_sents_per_s": med["occamtune"], "hf_train_sents_per_s": med["hf"],
           "ratio": med["occamtune"] / med["hf"]}
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / f"throughput_{args.task}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
