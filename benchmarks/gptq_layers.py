"""GPTQ's calibration with each layer's inputs kept between blocks, against a pass through the
whole model per block, on a fine-tuned run: seconds and whether the codes are the same.

    python -m benchmarks.gptq_layers RUN [RUN ...] --rounds 2

For each run, `quantize(bits=4, group_size=128, rounding=gptq)` on the run's calibration batches
(those `occamtune compress` takes), once with `LayerInputs(keep=True)` (the default) and once
with `keep=False`, alternating within each round, the model reloaded before each. Reported: the
median seconds of each, their ratio, and the share of weight codes that agree (the two compute
the same Hessians, up to float rounding in a different order of operations).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.results_io import write_results

PIPELINE = "quantize(bits=4, group_size=128, rounding=gptq)"


def quantize_once(run: Path, keep: bool) -> tuple[float, dict[str, Any]]:
    """Seconds of one GPTQ quantization of the run's model, and its codes by weight name."""
    from occamtune.compress import compress
    from occamtune.compress.gptq import LayerInputs
    from occamtune.compress.pipeline import parse_pipeline
    from occamtune.compress.record import record_of
    from occamtune.compress.run import make_context
    from occamtune.models import load_model
    from occamtune.train.run import load_run_data

    # the package exports a `quantize` function under the module's name
    quantize_module = importlib.import_module("occamtune.compress.quantize")
    model, tok, _ = load_model(run, runtime=False)
    cfg, splits = load_run_data(run, tok, model.labels, model.head_config)
    ctx = make_context(cfg, splits, tok, progress=False)  # the context `occamtune compress` makes
    original = quantize_module.LayerInputs
    quantize_module.LayerInputs = functools.partial(LayerInputs, keep=keep)
    try:
        start = time.perf_counter()
        out = compress(model, parse_pipeline(PIPELINE), ctx)
        seconds = time.perf_counter() - start
    finally:
        quantize_module.LayerInputs = original
    codes = {name: q.codes for name, q in record_of(out).codes.items()}
    return seconds, codes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="fine-tuned run folders")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="gptq_layers", help="results/<name>.json and .md")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows = {}
    for run in map(Path, args.runs):
        times: dict[bool, list[float]] = {True: [], False: []}
        codes: dict[bool, dict] = {}
        for _ in range(args.rounds):
            for keep in (True, False):
                seconds, codes[keep] = quantize_once(run, keep)
                times[keep].append(seconds)
                print(f"{run.name} keep={keep}: {seconds:.1f} s", flush=True)
        total = sum(c.numel() for c in codes[True].values())
        same = sum(int((codes[True][k] == codes[False][k]).sum()) for k in codes[True])
        rows[run.name] = {"run": str(run), "kept_s": statistics.median(times[True]),
                          "pass_s": statistics.median(times[False]), "kept_runs": times[True],
                          "pass_runs": times[False], "codes_agree": same / total,
                          "weights": total}
    summary = {"pipeline": PIPELINE, "rounds": args.rounds, "threads": args.threads, "runs": rows}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    """The Markdown table of a GPTQ calibration timing record."""
    lines = ["| run | inputs kept s | pass per block s | speed-up | codes agree |",
             "|---|---|---|---|---|"]
    for name, r in summary["runs"].items():
        lines.append(f"| {name} | {r['kept_s']:.1f} | {r['pass_s']:.1f} | "
                     f"{r['pass_s'] / r['kept_s']:.2f}x | {r['codes_agree']:.2%} |")
    return "\n".join(lines) + (f"\n\n`{summary['pipeline']}`, median of {summary['rounds']} "
                               f"round(s) in alternation, {summary['threads']} threads; the "
                               "seconds include loading the calibration batches, not the model.\n")


if __name__ == "__main__":
    main()
