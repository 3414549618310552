"""Structured pruning without fine-tuning, with and without the least-squares refit of the output
projections, on the fine-tuned MiniLM-L6 of CoNLL-2003 (dev F1).

    python -m benchmarks.refit [--threads 1]
    -> benchmarks/results/refit.json and .md

Each row prunes a copy of the fine-tuned model of vs_hf.py (benchmarks/work/occamtune) with
`structured(..., refit=...)` and no recovery training, with the calibration batches of
`occamtune compress` (batches of 32 training sentences; the row's number of them for the
refit), and measures dev F1 in memory. The numbers quoted in `occamtune/compress/structured.py` and
`CompressContext.refit_batches` come from here.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
from pathlib import Path

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
ROWS = [  # (pipeline, refit batches)
    ("structured(heads=0, ffn=0.35, refit=false)", 8),
    ("structured(heads=0, ffn=0.35)", 8),
    ("structured(heads=0, ffn=0.35)", 32),
    ("structured(heads=0, ffn=0.68, refit=false)", 8),
    ("structured(heads=0, ffn=0.68)", 8),
    ("structured(heads=0, ffn=0.68)", 32),
    ("structured(heads=0, ffn=0.68)", 64),
    ("structured(heads=0.25, ffn=0, refit=false)", 8),
    ("structured(heads=0.25, ffn=0)", 32),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "benchmarks" / "work" / "occamtune"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from occamtune import inference
    from occamtune.compress import compress, parse_pipeline
    from occamtune.compress.run import make_context
    from occamtune.search.trial import load_teacher

    teacher = load_teacher(args.base)
    dev = teacher.splits["dev"]
    base = float(inference.evaluate(teacher.model, dev.dataset, dev.features)["f1"])
    records = []
    for pipeline, batches in ROWS:
        ctx = make_context(teacher.cfg, teacher.splits, teacher.tokenizer, progress=False,
                           refit_batches=batches, teacher=teacher.model)
        ctx = dataclasses.replace(ctx, finetune=None)  # no recovery training
        configs = parse_pipeline(pipeline)
        start = time.perf_counter()
        model = compress(copy.deepcopy(teacher.model), configs, ctx)
        seconds = time.perf_counter() - start
        f1 = float(inference.evaluate(model, dev.dataset, dev.features)["f1"])
        refit = configs[0].refit
        records.append({"pipeline": pipeline, "refit": refit, "refit_batches": batches if refit else 0,
                        "dev_f1": f1, "dev_drop": base - f1, "prune_seconds": seconds,
                        "threads": torch.get_num_threads()})
        print(json.dumps(records[-1]), flush=True)
    data = {"base_dev_f1": base, "rows": records}
    write_results("refit", data, table(data))


def table(data: dict) -> str:
    """The Markdown table of the refit results."""
    lines = [f"Fine-tuned dev F1 {data['base_dev_f1']:.2f}; no training after pruning.", "",
             "| pipeline | refit batches | dev F1 | dev drop | seconds |", "|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| `{r['pipeline']}` | {r['refit_batches'] or '-'} | {r['dev_f1']:.2f} | "
                     f"{r['dev_drop']:.2f} | {r['prune_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
