"""Whether a fine-tuned generator reads its source: the references' cost with their own sources
against with another example's.

    python -m benchmarks.source_use RUN [RUN ...] --name NAME    # -> results/NAME.json and .md

A generator that has not learnt to use its source writes one text for every source (its
`distinct` is near 0 and its ROUGE is that of a fixed sentence): to it, a reference costs as
much after the wrong source as after the right one. For each run and split, the first --n
examples are scored under teacher forcing twice, as `occamtune evaluate` scores a code length:
with their own sources, and with the sources rotated by one (example i's references after
example i+1's source). `gain` is the share of the cost the true source saves; `distinct` is
read from the run's own `eval_<split>.json` when it has one.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Any

from benchmarks.results_io import write_results


def costs(predictor: Any, data: Path, n: int, batch_size: int) -> dict[str, Any]:
    """Total bits of the first `n` examples' first references at `data`, after their own
    sources and after rotated ones, under a loaded model (`occamtune.load`)."""
    from occamtune.data.pairs import Pair
    from occamtune.models.generation import target_nll

    dataset = predictor.task.read(data, predictor.data)
    dataset.items = dataset.items[:n]
    if len(dataset.items) < 2:
        raise SystemExit(f"{data}: at least 2 examples are needed to rotate the sources")
    rotated = copy.copy(dataset)
    items = dataset.items
    rotated.items = [Pair(items[(i + 1) % len(items)].source, item.references, item.line)
                     for i, item in enumerate(items)]
    true, other = (sum(target_nll(predictor.model, predictor.encode(d), batch_size)) / math.log(2)
                   for d in (dataset, rotated))
    return {"n": len(items), "bits": true, "rotated_bits": other, "gain": 100 * (1 - true / other)}


def run_config(run: Path) -> dict[str, Any]:
    """The run's saved config (`config.yaml`; an artifact or export has none: {})."""
    import yaml

    path = run / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="occamtune generate runs (or artifacts) to score")
    p.add_argument("--data", default=None,
                   help="the data folder (default: each run's own data.path)")
    p.add_argument("--splits", nargs="+", default=["dev", "test"])
    p.add_argument("--n", type=int, default=100, help="examples per split")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="source_use", help="results/<name>.json and .md")
    args = p.parse_args()

    import torch

    import occamtune
    from occamtune.tasks.text_metrics import distinct_share

    torch.set_num_threads(args.threads)
    rows = []
    for run in map(Path, args.runs):
        predictor = occamtune.load(run)  # once for every split
        config = run_config(run)
        folder = Path(args.data or config.get("data", {}).get("path") or "")
        row: dict[str, Any] = {"run": str(run), "data": str(folder), "train": config.get("train", {})}
        for split in args.splits:
            data = folder / f"{split}.jsonl"
            if not data.is_file():
                raise SystemExit(f"no {split} file at {data} (give --data)")
            row[split] = costs(predictor, data, args.n, args.batch_size)
            report = run / f"eval_{split}.json"
            row[split]["distinct"] = None  # a split the run was not evaluated on
            if report.is_file():
                scored = json.loads(report.read_text())
                texts = [o["prediction"] for o in scored.get("outputs", [])]
                row[split]["distinct"] = scored.get("distinct", texts and  # older runs: counted
                                                    distinct_share(texts))
        rows.append(row)
    summary = {"n": args.n, "splits": args.splits, "rows": rows}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    lines = [("| run | lr / head_lr / epochs | split | bits, own source | bits, another's source "
             "| gain | distinct texts |"), "|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        t = row["train"]
        how = f"{t.get('lr', '-')} / {t.get('head_lr') or '-'} / {t.get('epochs', '-')}"
        for split in summary["splits"]:
            s = row[split]
            distinct = "-" if s.get("distinct") is None else f"{s['distinct']:.0f}%"
            lines.append(f"| {Path(row['run']).name} | {how} | {split} | {s['bits']:,.0f} | "
                         f"{s['rotated_bits']:,.0f} | {s['gain']:.2f}% | {distinct} |")
    lines.append("")
    lines.append(f"The first {summary['n']} examples of each split; bits: their first references' "
                 "cost under teacher forcing; another's source: example i+1's; gain: the share "
                 "of the cost the own source saves.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
