"""A decoder against an encoder as the task model: SmolLM2-135M-Instruct against MiniLM-L6.

    python -m benchmarks.families                       # NER and SST-2 -> results/families.json
    python -m benchmarks.families --max-train 200 --max-test 200 --epochs 1   # a slice
                                                        # -> results/families.slice200.json

Both models are fine-tuned by occamtune with the same epochs, batch size, learning rate, warm-up,
weight decay, seed and input length, on CoNLL-2003 NER (entity F1 on test) and SST-2 (accuracy on
test); each run in its own subprocess, so that its peak memory is its own. Measured per run: the
test score, training sentences per second, peak resident memory, wall time and the bytes of the
saved model (`model.safetensors`, float32).

Then the shrink search (`occamtune.shrink`, max drop 1.0 F1 on dev) on the SmolLM2 NER model, in
its own subprocess: its choice is compared with the fine-tuned float32 model and with the size of
the packaged GGUF file (Q4_1, the size anchor: what the pretrained model already takes on disk
quantized). The search space is `--space` (by default 4-bit weights with or without the
vocabulary trimmed and the embedding rows as codes: methods that touch no layer internals);
`--shrink-trials` bounds it.

--max-train / --max-test / --epochs take a slice (train, dev and test cut to the first N
examples; dev to --max-test): its results go to results/families.slice<N>.json, never over the
full run's, and are marked "slice". SmolLM2 on all of CoNLL-2003 takes hours on two cores.
--models and --data-root point at other models and files (the smoke test: tiny ones). --reuse
keeps the runs (and searches) already measured with the same settings, e.g. to search another
--space on the same fine-tuned model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results_io import write_results
from benchmarks.vs_hf import COMMON, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FOLDERS = {"ner": "conll2003", "classify": "sst2"}
METRIC = {"ner": "f1", "classify": "accuracy"}
MODELS = ["smollm2", "minilm"]
SPACE = ["distill_layers=0", "heads=0.0", "ffn=0.0", "sparsity=0.0", "lowrank_energy=0.0",
         "vocab_trim=true,false", "vocab_rank=32", "codebook=false,true", "bits=4",
         "group_size=128", "quant_epochs=0"]


def run_side(task: str, model: str, out: Path, args: argparse.Namespace) -> dict:
    """Fine-tune `model` on `task` with the shared settings; the numbers of that run."""
    import occamtune
    from occamtune.config import load_config

    overrides = [f"task={task}", f"data.path={Path(args.data_root) / FOLDERS[task]}",
                 f"output={out}", "overwrite=true", f"model.name={model}",
                 f"train.epochs={args.epochs}", f"data.max_length={args.max_length}",
                 *(f"train.{k}={v}" for k, v in COMMON.items() if k != "epochs")]
    if args.max_train:
        overrides.append(f"data.max_train={args.max_train}")
    if args.max_test:
        overrides += [f"data.max_dev={args.max_test}", f"data.max_test={args.max_test}"]
    if args.limit:
        overrides.append(f"train.max_steps={args.limit}")
    start = time.perf_counter()
    run = occamtune.train(load_config(None, overrides), progress=False)
    return {"test": run.metrics["test"][METRIC[task]], "dev": run.metrics["dev"],
            "train_sents_per_s": run.train_sents_per_s, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "model_bytes": (out / "model.safetensors").stat().st_size,
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "pooling": run.model.head_config.pooling if task == "classify" else None,
            "model_dir": str(out)}


def run_shrink(base: Path, out: Path, args: argparse.Namespace) -> dict:
    """The shrink search on `base`; its choice against the float32 model and the GGUF file."""
    import occamtune
    from occamtune.models import resolve_model
    from occamtune.search.space import parse_space

    start = time.perf_counter()
    result = occamtune.shrink(base, out, max_drop=args.max_drop, budget_trials=args.shrink_trials,
                              space=parse_space(args.space), progress=False)
    s = result.summary
    anchor = Path(resolve_model(args.anchor)) if args.anchor else None
    gguf_bytes = anchor.stat().st_size if anchor and anchor.is_file() else None
    chosen = s.get("chosen_bytes")
    return {"base_bytes": s["base_bytes"], "chosen_bytes": chosen,
            "chosen_pipeline": s.get("chosen_pipeline"), "trials": s.get("trials"),
            "failures": s.get("failures", []),
            "base_dev_f1": s.get("base_dev_metric"), "chosen_dev_f1": s.get("chosen_dev_metric"),
            "base_test_f1": s.get("base_test_metric"), "chosen_test_f1": s.get("chosen_test_metric"),
            "gguf_file": str(anchor) if anchor else None, "gguf_bytes": gguf_bytes,
            "x_smaller_than_fp32": s["base_bytes"] / chosen if chosen else None,
            "x_smaller_than_gguf": gguf_bytes / chosen if chosen and gguf_bytes else None,
            "max_drop": args.max_drop, "space": args.space, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "candidates": measured_candidates(out)}


def measured_candidates(out: Path) -> list[dict]:
    """The pipelines the search measured on all of dev (`candidates.jsonl`, re-proposals left
    out): bytes, dev F1 and its drop from the fine-tuned model's."""
    path = out / "candidates.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [{"trial": r["trial"], "pipeline": r["pipeline"], "bytes": r["bytes"],
             "dev_f1": r["dev_metric"], "dev_drop": r["dev_drop"]}
            for r in rows if r.get("duplicate_of") is None and r.get("dev_metric") is not None]


def _settings(args: argparse.Namespace, *extra: str) -> dict:
    """What a measured side depends on (a cached side is reused only for the same)."""
    keys = ("epochs", "max_train", "max_test", "limit", "max_length", "data_root")
    settings = {"side": list(extra), **{k: getattr(args, k) for k in keys}}
    if "--shrink-base" in extra:
        settings.update(space=args.space, max_drop=args.max_drop, trials=args.shrink_trials,
                        anchor=args.anchor)
    return settings


def shrink_folder(args: argparse.Namespace) -> Path:
    """The search's output folder: one per search space (a study keeps the space it began with)."""
    import hashlib

    if args.space == SPACE:
        return Path(args.workdir) / "shrink"
    key = hashlib.sha1(" ".join(args.space).encode()).hexdigest()[:8]
    return Path(args.workdir) / f"shrink-{key}"


def _subprocess(args: argparse.Namespace, *extra: str) -> dict:
    """This script with `extra` (one side), in its own process: its last stdout line as JSON;
    with --reuse, the side's cached result when it was measured with the same settings."""
    task, side = extra[1], extra[3]
    name = f"{task}-{_slug(side)}" if extra[2] == "--side" else shrink_folder(args).name
    cache = Path(args.workdir) / f"{name}.json"
    if args.reuse and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("settings") == _settings(args, *extra):
            print("reusing", " ".join(extra), flush=True)
            return cached["result"]
    cmd = [sys.executable, "-m", "benchmarks.families", *extra, "--epochs", str(args.epochs),
           "--max-train", str(args.max_train), "--max-test", str(args.max_test),
           "--limit", str(args.limit), "--max-length", str(args.max_length),
           "--data-root", args.data_root, "--workdir", args.workdir, "--max-drop",
           str(args.max_drop), "--shrink-trials", str(args.shrink_trials),
           "--anchor", args.anchor, "--space", *args.space]
    print("running", " ".join(extra), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"{' '.join(extra)} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"settings": _settings(args, *extra), "result": result}))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", choices=["ner", "classify", "both"], default="both")
    p.add_argument("--epochs", type=float, default=COMMON["epochs"])
    p.add_argument("--max-train", type=int, default=0, help="first N training examples (0: all)")
    p.add_argument("--max-test", type=int, default=0, help="first N dev and test examples (0: all)")
    p.add_argument("--limit", type=int, default=0, help="max training steps (smoke test only)")
    p.add_argument("--max-length", type=int, default=128, help="input length in sub-words, both models")
    p.add_argument("--models", nargs=2, default=MODELS, metavar=("DECODER", "ENCODER"),
                   help="the two models (default: smollm2 minilm); the first is searched")
    p.add_argument("--anchor", default="smollm2",
                   help="the GGUF file (or 'smollm2') whose size the search's choice is set against")
    p.add_argument("--max-drop", type=float, default=1.0)
    p.add_argument("--shrink-trials", type=int, default=4, help="trials of the search (0: no search)")
    p.add_argument("--space", nargs="*", default=SPACE)
    p.add_argument("--data-root", default=str(DATA), help="a folder holding conll2003/ and sst2/")
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "families"))
    p.add_argument("--name", default="families", help="results/<name>.json and .md")
    p.add_argument("--reuse", action="store_true",
                   help="reuse runs and searches measured earlier with the same settings (workdir)")
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--shrink-base", help=argparse.SUPPRESS)
    args = p.parse_args()
    work = Path(args.workdir)
    if args.side:  # one model on one task, in its own process
        print(json.dumps(run_side(args.task, args.side, work / f"{args.task}-{_slug(args.side)}", args)))
        return
    if args.shrink_base:
        print(json.dumps(run_shrink(Path(args.shrink_base), shrink_folder(args), args)))
        return
    tasks = ["ner", "classify"] if args.task == "both" else [args.task]
    for task in tasks:
        if not (Path(args.data_root) / FOLDERS[task]).is_dir():
            sys.exit(f"no data at {Path(args.data_root) / FOLDERS[task]}: this benchmark needs "
                     "../shared/data")
    results = {task: {m: _subprocess(args, "--task", task, "--side", m) for m in args.models}
               for task in tasks}
    shrink = None
    if "ner" in tasks and args.shrink_trials:
        base = results["ner"][args.models[0]]["model_dir"]
        shrink = _subprocess(args, "--task", "ner", "--shrink-base", base)
    slice_ = bool(args.max_train or args.max_test or args.limit)
    summary = {"tasks": results, "shrink": shrink, "models": args.models, "epochs": args.epochs,
               "settings": COMMON, "max_length": args.max_length, "max_train": args.max_train,
               "max_test": args.max_test, "limit_steps": args.limit, "slice": slice_,
               "data_root": args.data_root}
    name = args.name + (f".slice{args.max_train or args.max_test or args.limit}" if slice_ else "")
    md = table(summary)
    write_results(name, summary, md)
    print(md)


def _slug(model: str) -> str:
    return Path(model).name.replace(".", "-") or "model"


def table(summary: dict) -> str:
    """The Markdown tables of a families results record."""
    lines = ["| task | model | test score | train sents/s | peak RSS MB | saved bytes | pooling |",
             "|---|---|---|---|---|---|---|"]
    for task, runs in summary["tasks"].items():
        for model, r in runs.items():
            lines.append(f"| {task} | {model} | {METRIC[task]} {r['test']:.2f} | "
                         f"{r['train_sents_per_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['model_bytes']:,} | {r['pooling'] or '-'} |")
    s = summary.get("shrink")
    if s:
        lines += ["", *shrink_table(s)]
    steps = f", at most {summary['limit_steps']} steps" if summary.get("limit_steps") else ""
    note = (f"\nA slice (first {summary['max_train'] or 'all'} training and "
            f"{summary['max_test'] or 'all'} dev and test examples, {summary['epochs']:g} "
            f"epochs{steps}): not the benchmark.\n" if summary.get("slice") else "")
    return "\n".join(lines) + "\n" + note


def shrink_table(s: dict) -> list[str]:
    """The search's choice against the float32 model and the GGUF file, as Markdown lines."""
    def f(v: float | None, d: int = 2) -> str:
        return "-" if v is None else f"{v:,.{d}f}"

    return [
        "| model | bytes | dev F1 | test F1 |", "|---|---|---|---|",
        f"| fine-tuned float32 | {s['base_bytes']:,} | {f(s['base_dev_f1'])} | {f(s['base_test_f1'])} |",
        f"| packaged GGUF (Q4_1, pretrained, no head) | {f(s['gguf_bytes'], 0)} | | |",
        (f"| shrink's choice `{s['chosen_pipeline']}` | {f(s['chosen_bytes'], 0)} | "
         f"{f(s['chosen_dev_f1'])} | {f(s['chosen_test_f1'])} |"),
        *(f"| measured `{c['pipeline']}` | {c['bytes']:,} | {c['dev_f1']:.2f} "
          f"(drop {c['dev_drop']:.2f}) | |" for c in s.get("candidates") or []
          if c["pipeline"] != s["chosen_pipeline"]),
        "",
        (f"Choice: {f(s['x_smaller_than_fp32'], 1)}x smaller than float32, "
         f"{f(s['x_smaller_than_gguf'], 1)}x smaller than the GGUF file; max drop "
         f"{s['max_drop']} F1 on dev; trials: {s['trials']}."),
        *(f"Trial {x['trial']} failed (`{x['pipeline']}`): {x['reason']}"
          for x in s.get("failures") or []),
    ]


if __name__ == "__main__":
    main()
