"""The shrink search on CoNLL-2003 with the fine-tuned MiniLM-L6, within three fine-tunes' time.

    python -m benchmarks.shrink --base benchmarks/work/occamtune     # a run from vs_hf.py
    -> benchmarks/results/shrink.json, shrink.md, and the report in benchmarks/work/shrink/

The time budget is `--budget-factor` (default 3) times the wall time of one full fine-tune, read
from the vs_hf.py record of that same run (benchmarks/work/ner-occamtune.json). Candidates are judged
on dev; the chosen one is confirmed once on test (by `occamtune shrink` itself). In the same run the
peer, ONNX Runtime int8 dynamic quantization of the same model, is measured on dev and test and
drawn on the report's frontier plot.

The default search space of `occamtune shrink` holds four student depths, each a distillation
of 20 minutes or more on two cores, and more settings than one budget can measure.
benchmarks/compression.py measured which are worth it here: a 4-layer student distilled for 6
epochs (34 minutes on one thread, more than this benchmark's whole budget) loses 0.52 test F1
alone; removing 70% of the feed-forward neurons of the 6-layer model itself (structured pruning,
2 epochs of recovery with the unpruned model as teacher, 10 minutes on one thread) lost 0.35
before quantization and reaches 20x with the vocabulary trimmed, codebook and 4-bit weights;
3-bit weights lose 1.97 on the 6-layer model alone (and every 3-bit candidate of a first search
with this space and 3 bits in it was pruned as hopeless). This benchmark therefore searches, on
the fine-tuned model: 68% of the feed-forward neurons removed (with the position rows cut to the
run's max_length, 68% gives the bytes 70% gave) or none; vocabulary trimming (dropped rows at
rank 32 or 128; with the codebook, their rank-r codes are product-quantization codes too, in
sub-vectors of 8: r / 8 bytes a row) or none; the embedding rows as product-quantization codes
or not; 4-bit weights in groups of 128 rounded with GPTQ: 12 pipelines, and 2 epochs of
quantization-aware training (lr 1e-4, then rounded to the nearest code) for the candidates the
search retries (a miss within 1.5 times the tolerance, smaller than the best kept). With
3 epochs (before the search queued training first and deferred duplicates) a QAT retry took 19
minutes beside another and the search ended 6 minutes past its budget.
The 20x pipelines of this space: with the rows of unseen word pieces as rank-32 codes quantized
with the weights (16 bytes a row), the refit student lost 1.52 dev F1 and QAT brought back little
(1.36 at best); as rank-128 codes in product quantization (the same 16 bytes a row), 1.12, and
0.85 after 2 epochs of QAT rounded to the nearest code (GPTQ after QAT: 1.08). Rank 32 in codes
of 8 (4 bytes a row, 21.4x) lost 1.76, 1.37 after QAT (in a run of this benchmark, stopped):
a miss QAT cannot bring back, hence retries only within 1.5 times the tolerance. Coarser
codebooks for the kept rows or fewer full rows (only tokens seen twice or more) lose 0.5 to 1.6
more F1 on the unpruned model for 300 to 670 KB (benchmarks/results/candidates.md), and on the
refit student 3-bit attention weights (22.1x, checked by hand) lost 1.85.
With the centroids as 8-bit codes (`codebook_centroid_bits=8`, a few percent fewer bytes) the
same QAT candidate came back just outside the tolerance on dev and the search chose a larger
model (benchmarks/results/shrink_centroids8.json): this space keeps the centroids in fp16.
Full word rows only for the tokens seen three times (`vocab_min_count=3`) need QAT to come back
within the tolerance, from a miss past the default retry window: with `--retry-factor 2` the
search finds that smaller model (shrink_min3_retry2.json, docs page "search").
`--space` changes it; `--space` with no values uses the default space. `--objective both`
(or `latency`, `--max-latency-ms`) searches for a model small and fast at once, each candidate
measured as its ONNX export (`--runtime onnx`); `python -m benchmarks.nbits --base BASE
--artifact OUTPUT/chosen` then times the choice against the fp32 model and the ONNX Runtime int8
peer in alternation, at batch 1 and 32. `--workers 2 --threads 1`
runs two processes on the study, one per core (the fine-tune that sets the budget ran on both).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
SPACE = ["distill_layers=0", "heads=0.0", "ffn=0.0,0.68", "prune_epochs=2", "sparsity=0.0",
         "lowrank_energy=0.0", "vocab_trim=true,false", "vocab_rank=32,128", "codebook=false,true",
         "bits=4", "group_size=128", "quant_epochs=0,2", "quant_lr=1e-4"]


def measure_peer(base: Path, out: Path) -> dict:
    """ONNX Runtime int8 dynamic quantization of the fine-tuned model: bytes, dev and test F1."""
    from occamtune import inference
    from occamtune.compress.run import load_run_data
    from occamtune.export import OnnxTaskModel, export_onnx
    from occamtune.models import load_model
    from occamtune.tasks import get_task

    model, tok, _ = load_model(base)
    metric = get_task(model.head_config.task).metric  # F1 for NER, macro F1 for relations, ...
    _, splits = load_run_data(base, tok, model.labels, model.head_config)
    path = export_onnx(model, out / "peer" / "model.int8.onnx", quantize_int8=True,
                       per_channel=False,  # the peer: ONNX Runtime's defaults
                       exporter="torchscript")  # as the recorded results were measured
    peer = OnnxTaskModel(path, model.head_config)
    scores = {split: inference.evaluate(peer, splits[split].dataset, splits[split].features)[metric]
              for split in ("dev", "test")}
    return {"name": "ONNX Runtime int8", "bytes": path.stat().st_size, "metric": metric,
            "dev_metric": scores["dev"], "test_metric": scores["test"]}


def finetune_wall_s(record: Path) -> float:
    """Wall time of one full fine-tune: from a vs_hf.py record, or from a run folder (from its
    config.yaml, written first, to its eval_test.json, written last)."""
    if record.is_dir():
        return (record / "eval_test.json").stat().st_mtime - (record / "config.yaml").stat().st_mtime
    return float(json.loads(record.read_text())["wall_s"])


def study_wall_s(out: Path) -> float:
    """From the first trial's start to the last trial's end (now, for a trial still marked running)."""
    import datetime

    import optuna

    trials = optuna.load_study(study_name="shrink", storage=f"sqlite:///{out.resolve()}/study.db").trials
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete or datetime.datetime.now() for t in trials if t.datetime_start]
    return (max(ends) - min(starts)).total_seconds() if starts else 0.0


def screenshot(html: Path, png: Path) -> None:
    """A PNG of the report's first screen by headless Chromium (Debian's `chromium` package)."""
    import shutil
    import subprocess

    exe = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
               None)
    if exe is None:
        sys.exit("--screenshot needs Chromium on the PATH (Debian: apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png.resolve()}", "--window-size=1100,1500",
                    html.resolve().as_uri()], check=True, capture_output=True, timeout=300)


def start_workers(args: argparse.Namespace, base: Path, out: Path, budget: float) -> list:
    """`--workers - 1` more processes on the same study and output folder (shared cache of
    trained students), started now with the same time budget; they only run trials."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(
        [sys.executable, "-m", "occamtune.cli", "shrink", str(base), "--output", str(out),
         "--max-drop", str(args.max_drop), "--budget", f"{budget:.0f}", "--seed", str(13 + i),
         "--quiet", "--no-finalize", *goal_flags(args), "--space", *args.space],
        env=env, stdout=subprocess.DEVNULL, stderr=open(out / f"worker{i}.log", "w"))
        for i in range(1, args.workers)]


def goal_flags(args: argparse.Namespace) -> list[str]:
    """The `occamtune shrink` flags of --objective, --max-latency-ms and --runtime."""
    flags = ["--objective", args.objective]
    if args.max_latency_ms is not None:
        flags += ["--max-latency-ms", str(args.max_latency_ms)]
    if args.retry_factor is not None:
        flags += ["--retry-factor", str(args.retry_factor)]
    return flags + (["--runtime", args.runtime] if args.runtime else [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "benchmarks" / "work" / "occamtune"))
    p.add_argument("--finetune-record", default=str(ROOT / "benchmarks" / "work" / "ner-occamtune.json"),
                   help="vs_hf.py's record of the fine-tune of --base, or the run folder of an "
                        "`occamtune train` (its wall time is the budget's unit)")
    p.add_argument("--budget-factor", type=float, default=3.0)
    p.add_argument("--max-drop", type=float, default=1.0)
    p.add_argument("--space", nargs="*", default=SPACE)
    p.add_argument("--objective", choices=["size", "latency", "both"], default="size")
    p.add_argument("--max-latency-ms", type=float, default=None)
    p.add_argument("--retry-factor", type=float, default=None,
                   help="`occamtune shrink --retry-factor` (default: its own, 1.5)")
    p.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8"], default=None,
                   help="default: onnx when --objective or --max-latency-ms involves speed")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "work" / "shrink"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes searching the one study (`occamtune shrink --no-finalize` "
                        "beside this one), each on --threads threads")
    p.add_argument("--name", default="shrink", help="results/<name>.json and .md")
    p.add_argument("--screenshot", help="also save a PNG of the report here (headless Chromium), "
                                        "e.g. docs/report.png")
    p.add_argument("--no-new-trials", action="store_true",
                   help="only finalize a search that ran (or was stopped) earlier in --output")
    args = p.parse_args()

    import torch

    from occamtune.report.render import write_report
    from occamtune.search import shrink
    from occamtune.search.records import write_json
    from occamtune.search.space import parse_space
    from occamtune.search.trial import Measure

    if args.threads:
        torch.set_num_threads(args.threads)
    base, out = Path(args.base), Path(args.output)
    record = Path(args.finetune_record)
    if not (base / "model.safetensors").is_file() or not record.exists():
        sys.exit(f"no fine-tuned model at {base} or no record {record}: run "
                 "`python -m benchmarks.vs_hf --task ner` first")
    finetune_wall = finetune_wall_s(record)
    budget = args.budget_factor * finetune_wall
    space = parse_space(args.space)
    workers = [] if args.no_new_trials else start_workers(args, base, out, budget)
    # with workers, their last trials may end after this process's: choose once all are done
    goal = {"objective": args.objective, "max_latency_ms": args.max_latency_ms,
            "runtime": args.runtime,
            **({"measure": Measure(retry_factor=args.retry_factor)}
               if args.retry_factor is not None else {})}
    result = shrink(base, out, max_drop=args.max_drop,
                    budget_seconds=0.0 if args.no_new_trials else budget,
                    space=space, progress=True, finalize_search=not workers, **goal)
    if workers:
        for w in workers:
            if w.wait():
                sys.exit(f"a shrink worker failed (exit {w.returncode})")
        result = shrink(base, out, max_drop=args.max_drop, budget_seconds=0.0, space=space,
                        progress=False, **goal)
    search_wall = study_wall_s(out)
    summary = dict(result.summary)
    summary["peer"] = measure_peer(base, out)
    write_json(out / "shrink.json", summary)  # the report draws the peer from here
    html, md = write_report(out)
    if args.screenshot:
        screenshot(html, Path(args.screenshot))

    s = summary
    keys = {
        "base_bytes": s["base_bytes"], "chosen_bytes": s["chosen_bytes"],
        "size_ratio": s.get("size_ratio"),
        "base_dev_f1": s["base_dev_metric"], "chosen_dev_f1": s["chosen_dev_metric"],
        "base_test_f1": s["base_test_metric"], "chosen_test_f1": s["chosen_test_metric"],
        "test_drop": s.get("test_drop"), "chosen_pipeline": s["chosen_pipeline"],
        "base_latency_ms": s["base_latency_ms"], "chosen_latency_ms": s.get("chosen_latency_ms"),
        "latency_ratio": s.get("latency_ratio"), "objective": s.get("objective", "size"),
        "max_latency_ms": s.get("max_latency_ms"), "runtime": s.get("runtime", "torch"),
        "chosen_artifact_bytes": s.get("chosen_artifact_bytes"),
        "search_wall_s": search_wall, "finetune_wall_s": finetune_wall, "budget_s": budget,
        "trials": s["trials"], "space": args.space, "max_drop": args.max_drop, "peer": s["peer"],
        "report_html": str(html), "report_md": str(md),
        "smaller_misses": smaller_misses(out, s["chosen_bytes"], args.max_drop),
    }
    md = table(keys)
    write_results(args.name, keys, md)
    print(md)


def smaller_misses(out: Path, chosen_bytes: int | None, max_drop: float, n: int = 3) -> list[dict]:
    """The `n` smallest candidates measured on all of dev that were smaller than the choice but
    lost more than `max_drop`: what the tolerance ruled out, and by how much."""
    from benchmarks.families import measured_candidates

    seen, rows = set(), []
    for c in sorted(measured_candidates(out), key=lambda c: c["bytes"]):
        if c["pipeline"] in seen or c["dev_drop"] <= max_drop:
            continue
        if chosen_bytes is not None and c["bytes"] >= chosen_bytes:
            break
        seen.add(c["pipeline"])
        rows.append(c)
    return rows[:n]


def table(keys: dict) -> str:
    """The Markdown table of a shrink results record."""
    f = lambda v, d=2: "-" if v is None else f"{v:,.{d}f}"
    peer = keys["peer"]
    metric = peer.get("metric", "f1")  # records from before it was kept are NER (F1)
    budget, finetune_wall = keys["budget_s"], keys["finetune_wall_s"]
    trials = keys["trials"]
    if isinstance(trials, dict):  # Optuna's trial states and their counts
        trials = "trials: " + ", ".join(f"{n} {state}" for state, n in trials.items() if n)
    rows = [
        f"| model | bytes on disk | x smaller | dev {metric} | test {metric} |", "|---|---|---|---|---|",
        f"| fp32 fine-tuned | {keys['base_bytes']:,} | 1.0 | {f(keys['base_dev_f1'])} | {f(keys['base_test_f1'])} |",
        (f"| ONNX Runtime int8 (peer) | {peer['bytes']:,} | {keys['base_bytes'] / peer['bytes']:.1f} | "
        f"{f(peer['dev_metric'])} | {f(peer['test_metric'])} |"),
        (f"| shrink's choice: `{keys['chosen_pipeline']}` | {f(keys['chosen_bytes'], 0)} | {f(keys['size_ratio'], 1)} | "
        f"{f(keys['chosen_dev_f1'])} | {f(keys['chosen_test_f1'])} |"),
        *(f"| smaller, outside the tolerance: `{c['pipeline']}` | {c['bytes']:,} | "
          f"{keys['base_bytes'] / c['bytes']:.1f} | {c['dev_f1']:.2f} (drop {c['dev_drop']:.2f}) | - |"
          for c in keys.get("smaller_misses") or []),  # (records from before they were kept lack it)
        "", (f"Search: {trials}, {keys['search_wall_s'] / 60:.0f} min wall (budget {budget / 60:.0f} min "
        f"= {budget / finetune_wall:g} x one fine-tune of {finetune_wall / 60:.0f} min), max drop "
        f"{keys['max_drop']} {metric} on dev."),
    ]
    if keys.get("latency_ratio") is not None:  # (records from before latencies were kept lack it)
        from occamtune.search.records import on_onnx

        on = "its ONNX export on ONNX Runtime" if on_onnx(keys) else "torch"
        rows.append(f"\nChosen by {keys.get('objective', 'size')}: {f(keys['chosen_latency_ms'], 3)} "
                    f"ms per sentence at batch 32 ({on}) against {f(keys['base_latency_ms'], 3)} "
                    f"for the fp32 model in torch, timed in alternation: "
                    f"{keys['latency_ratio']:.2f}x faster.")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
