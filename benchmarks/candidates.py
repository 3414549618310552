"""Single pipelines measured the way the shrink search measures a candidate, to choose its space.

    python -m benchmarks.candidates --threads 1 [--only NAME ...] [--rerun]
    -> benchmarks/results/candidates.json and .md

Each entry is compressed from the fine-tuned model of vs_hf.py (benchmarks/work/occamtune) by the
search's own trial code (`occamtune.search.trial.run_candidate`: trained steps cached by pipeline
prefix in benchmarks/work/candidates/cache, the artifact saved and its dev F1 measured as loaded
from disk), without the search's early stop on the dev slice. Reported: bytes of model.occ, the
ratio to the fp32 safetensors, dev F1 and its drop from the fine-tuned model's, and the seconds
the entry took (training included unless a cached step served it). An entry already in the
results is kept unless `--rerun`; run two at a time (one per core) with `--threads 1`. Each
record notes its torch threads: k-means and GPTQ round a little differently with their number
(the codebook-d6 entry lost 1.62 dev F1 at one thread, 1.49 at two).

The questions these answered (CoNLL-2003, MiniLM-L6, 20x = 4,514,436 bytes):
- where the bytes of a 20x artifact can come from: the embedding rows (coarser codebooks, fewer
  full rows) or the feed-forward neurons;
- whether the pruning recovery and the quantization-aware training (QAT) gain from being one
  training instead of two: "fused" entries prune with a hundredth of an epoch of recovery (the
  least `structured` takes) and leave the recovery to 4 epochs of QAT, which learns from the
  unpruned model (the same time as 2 epochs of recovery and 2 of QAT);
- what the least-squares refit of structured pruning (now its default; the entries measured
  before it pin `refit=false`) changes: "refit" entries prune with no recovery at all
  (`epochs=0`), the refit alone, then QAT;
- how to code the rows of tokens unseen in training ("fallback"): low-rank codes quantized with
  the weights, or product-quantization codes of their own (`codebook(fallback_dim=8)`), and how
  to round after QAT (GPTQ, or to the nearest code, the rounding QAT trained with).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from benchmarks.results_io import provenance, read_results, results_dir, write_results

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "candidates"
V32 = "vocab(rank=32, positions=true)"
V128 = "vocab(rank=128, positions=true)"
Q4 = "quantize(bits=4, group_size=128, rounding=gptq)"
QAT4 = "quantize(bits=4, group_size=128, epochs=4, lr=1e-4, rounding=gptq"
S68 = "structured(heads=0, ffn=0.68"
OLD = "refit=false, "  # measured before structured pruning refit its layers (now the default)
ENTRIES = {  # name -> pipeline
    "vocab r32 + codebook d4 + 4-bit": f"{V32}, codebook(dim=4), {Q4}",
    "vocab r32 + codebook d6 + 4-bit": f"{V32}, codebook(dim=6), {Q4}",
    "vocab r32 + codebook d8 + 4-bit": f"{V32}, codebook(dim=8), {Q4}",
    "vocab r32 min_count 2 + codebook + 4-bit":
        f"vocab(rank=32, min_count=2, positions=true), codebook, {Q4}",
    "vocab r32 min_count 3 + codebook + 4-bit":
        f"vocab(rank=32, min_count=3, positions=true), codebook, {Q4}",
    "FFN 35% (2 epochs)": "structured(heads=0, ffn=0.35, refit=false, epochs=2)",
    "FFN 35% + vocab r32 + codebook d8 + 4-bit":
        f"structured(heads=0, ffn=0.35, refit=false, epochs=2), {V32}, codebook(dim=8), {Q4}",
    "FFN 35% + vocab r32 + codebook d8 + 4-bit, QAT 2":
        f"structured(heads=0, ffn=0.35, refit=false, epochs=2), {V32}, codebook(dim=8), "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=gptq)",
    "vocab r32 + codebook, then FFN 68% (2 epochs) + 4-bit":
        f"{V32}, codebook, {S68}, {OLD}epochs=2), {Q4}",
    "fused: FFN 68% + vocab r32 + codebook + 4-bit, QAT 4":
        f"{S68}, {OLD}epochs=0.01), {V32}, codebook, {QAT4})",
    "fused: FFN 68% + vocab r32 + codebook + 4-bit, QAT 4 at lr 2e-4":
        f"{S68}, {OLD}epochs=0.01), {V32}, codebook, "
        "quantize(bits=4, group_size=128, epochs=4, lr=2e-4, rounding=gptq)",
    "fused: FFN 68% + vocab r32 + codebook + 4-bit, QAT 4 with hidden-state loss":
        f"{S68}, {OLD}epochs=0.01), {V32}, codebook, {QAT4}, hidden_weight=1)",
    "fused: FFN 68% + vocab r32 + codebook + 4-bit, QAT 5 with hidden-state loss":
        f"{S68}, {OLD}epochs=0.01), {V32}, codebook, "
        "quantize(bits=4, group_size=128, epochs=5, lr=1e-4, rounding=gptq, hidden_weight=1)",
    "refit FFN 68% (no recovery) + vocab r32 + codebook + 4-bit":
        f"{S68}, epochs=0), {V32}, codebook, {Q4}",
    "refit FFN 68% (no recovery) + vocab r32 + codebook + 4-bit, QAT 2 with hidden-state loss":
        f"{S68}, epochs=0), {V32}, codebook, "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=gptq, hidden_weight=1)",
    "fused, refit: FFN 68% + vocab r32 + codebook + 4-bit, QAT 4 with hidden-state loss":
        f"{S68}, epochs=0), {V32}, codebook, {QAT4}, hidden_weight=1)",
    "refit FFN 68% (2 epochs) + vocab r32 + codebook + 4-bit, QAT 2 rounded to nearest":
        f"{S68}, epochs=2), {V32}, codebook, "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=nearest)",
    "refit FFN 68% (2 epochs) + vocab r32 + codebook + 4-bit, QAT 2 with hidden-state loss":
        f"{S68}, epochs=2), {V32}, codebook, "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=gptq, hidden_weight=1)",
    "refit FFN 68% (2 epochs) + vocab r32 + codebook + 4-bit":
        f"{S68}, epochs=2), {V32}, codebook, {Q4}",
    "refit FFN 68% (2 epochs) + vocab r32 + codebook, fallback d8 + 4-bit":
        f"{S68}, epochs=2), {V32}, codebook(fallback_dim=8), {Q4}",
    "refit FFN 68% (2 epochs) + vocab r64 + codebook, fallback d8 + 4-bit":
        f"{S68}, epochs=2), vocab(rank=64, positions=true), codebook(fallback_dim=8), {Q4}",
    "refit FFN 68% (2 epochs) + vocab r128 + codebook, fallback d8 + 4-bit":
        f"{S68}, epochs=2), {V128}, codebook(fallback_dim=8), {Q4}",
    "refit FFN 68% (2 epochs) + vocab r128 + codebook, fallback d8, 8-bit centroids + 4-bit":
        f"{S68}, epochs=2), {V128}, codebook(fallback_dim=8, centroid_bits=8), {Q4}",
    "refit FFN 68% (2 epochs) + vocab r128 + codebook, fallback d8 + 4-bit, QAT 2":
        f"{S68}, epochs=2), {V128}, codebook(fallback_dim=8), "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=gptq)",
    "refit FFN 68% (2 epochs) + vocab r128 + codebook, fallback d8 + 4-bit, QAT 2 rounded to nearest":
        f"{S68}, epochs=2), {V128}, codebook(fallback_dim=8), "
        "quantize(bits=4, group_size=128, epochs=2, lr=1e-4, rounding=nearest)",
    "fused: FFN 77% + vocab r64 + codebook + 4-bit, QAT 4":
        f"structured(heads=0, ffn=0.77, refit=false, epochs=0.01), vocab(rank=64, positions=true), codebook, {QAT4})",
}


def measure(names: list[str], base: Path, work: Path = WORK) -> Iterator[tuple[str, dict]]:
    import torch

    from occamtune.compress import parse_pipeline
    from occamtune.search.trial import Measure, load_teacher, measure_base, run_candidate

    teacher = load_teacher(base)
    teacher.base = measure_base(teacher, Measure())
    no_early_stop = Measure(prune_factor=float("inf"))
    for name in names:  # one folder per entry: two runs side by side never share one
        folder = work / "artifacts" / hashlib.sha1(name.encode()).hexdigest()[:12]
        r = run_candidate(teacher, parse_pipeline(ENTRIES[name]), folder, work / "cache", no_early_stop)
        record = {"pipeline": ENTRIES[name], "bytes": r["bytes"],
                  "ratio": teacher.fp32_bytes / r["bytes"], "dev_f1": r["dev_metric"],
                  "dev_drop": teacher.base["dev_metric"] - r["dev_metric"],
                  "seconds": r["seconds"], "base_dev_f1": teacher.base["dev_metric"],
                  "threads": torch.get_num_threads(),
                  "provenance": provenance()}  # entries are measured in different runs
        print(json.dumps({name: record}), flush=True)
        yield name, record


def write(records: dict[str, dict]) -> None:
    write_results("candidates", records, table(records))


def table(records: dict[str, dict]) -> str:
    """The Markdown table of the candidates results (entry name -> record), smallest first."""
    lines = ["| entry | bytes | x smaller | dev F1 | dev drop | seconds |", "|---|---|---|---|---|---|"]
    for name, r in sorted(records.items(), key=lambda kv: kv[1]["bytes"]):
        lines.append(f"| {name} | {r['bytes']:,} | {r['ratio']:.2f} | {r['dev_f1']:.2f} | "
                     f"{r['dev_drop']:.2f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "benchmarks" / "work" / "occamtune"))
    p.add_argument("--only", nargs="*", choices=list(ENTRIES), help="entry names (default: all)")
    p.add_argument("--rerun", action="store_true", help="measure entries already in the results")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--workdir", default=str(WORK), help="artifacts and the cache of trained steps")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    path = results_dir() / "candidates.json"
    records = read_results(path)[0] if path.is_file() else {}
    todo = [n for n in (args.only or ENTRIES) if args.rerun or n not in records]
    for name, record in measure(todo, Path(args.base), Path(args.workdir)) if todo else ():
        # after each entry (a run stopped keeps what it measured), merged with what a run beside
        # this one wrote meanwhile
        records = {**(read_results(path)[0] if path.is_file() else {}), name: record}
        write(records)


if __name__ == "__main__":
    main()
