"""Training throughput, occamtune against the HF Trainer recipe, measured interleaved.

    python -m benchmarks.throughput --task ner --steps 80 --rounds 2

The full runs of vs_hf.py report throughput too, but they last long enough for the machine's load
to change between them. Here each round trains both sides for the same number of steps (same
model, batch 32, each side with its own recipe as in vs_hf.py), one after the other, and the ratio of medians is reported, so a busy
neighbour slows both alike. Writes results/throughput_<task>.json and .md; --data and --model as
in vs_hf.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]


def one(task: str, side: str, steps: int, workdir: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.vs_hf", "--task", task, "--side", side, "--limit", str(steps),
           "--workdir", workdir, *extra]
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
    p.add_argument("--data", help="a folder holding conll2003/ and sst2/ (vs_hf.py's default)")
    p.add_argument("--model", help="model folder or name for both sides (default: MiniLM-L6)")
    args = p.parse_args()
    extra = [*(["--data-root", args.data] if args.data else []),
             *(["--model", args.model] if args.model else [])]
    runs: dict[str, list[float]] = {"hf": [], "occamtune": []}
    for r in range(args.rounds):
        for side in ("hf", "occamtune") if r % 2 == 0 else ("occamtune", "hf"):
            res = one(args.task, side, args.steps, args.workdir, extra)
            runs[side].append(res["train_sents_per_s"])
            print(f"round {r + 1} {side}: {res['train_sents_per_s']:.1f} sents/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    out = {"task": args.task, "steps": args.steps, "rounds": args.rounds, "runs": runs,
           "occamtune_train_sents_per_s": med["occamtune"], "hf_train_sents_per_s": med["hf"],
           "ratio": med["occamtune"] / med["hf"]}
    write_results(f"throughput_{args.task}", out, table(out))
    print(json.dumps(out))


def table(out: dict) -> str:
    """The Markdown table of a throughput_<task> results record."""
    rounds = " / ".join(f"{v:.1f}" for v in out["runs"]["occamtune"])
    hf = " / ".join(f"{v:.1f}" for v in out["runs"]["hf"])
    return "\n".join([
        f"| {out['task']}, {out['rounds']} rounds x {out['steps']} steps | train sents/s (median) | each round |",
        "|---|---|---|",
        f"| occamtune | {out['occamtune_train_sents_per_s']:.1f} | {rounds} |",
        f"| HF Trainer recipe | {out['hf_train_sents_per_s']:.1f} | {hf} |",
        f"| ratio | {out['ratio']:.2f}x | |",
    ]) + "\n"


if __name__ == "__main__":
    main()
