"""occamtune against the standard Hugging Face fine-tuning recipe, side by side, same run.

    python benchmarks/vs_hf.py --task classify --data subj --defaults   # SUBJ, no config file
    python benchmarks/vs_hf.py --task ner        # CoNLL-2003 -> results/ner_vs_hf.json + .md
    python benchmarks/vs_hf.py --task classify   # SST-2      -> results/sst2_vs_hf.json + .md

The reference is the `Trainer` example (token classification / text classification): first
sub-word labels, `DataCollatorForTokenClassification` (dynamic padding), AdamW lr 1e-4, 10% warm-up,
weight decay 0.01, batch 32, 3 epochs, seqeval (NER) or accuracy on the test set. Both sides use the
same model (all-MiniLM-L6-v2) and run in their own subprocess, so that peak memory is theirs alone.
occamtune runs its own recipe from configs/ner-conll2003.yaml or configs/sst2.yaml (learning rate,
shape features, Viterbi decoding, length-grouped batches), with the same epochs, batch size and seed.
A side already measured is cached in benchmarks/work/<task>-<side>.json (occamtune's until the settings of
its shipped config change); --rerun measures it again.
--data picks the classification set (sst2, subj; SUBJ has no dev file, so occamtune holds 10% of
train out for early stopping while the reference trains on all of it). --defaults runs occamtune
with no config file at all (the plain defaults a new user gets), only the data path and the fixed
epochs / batch size / seed.
Use --limit to try it on a slice (numbers from a slice are not the benchmark): its results go to
results/<name>.limit<N>.json / .md, never over the full run's. --data-root and --model point both
sides at other files and another model (the smoke test: tiny ones).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results_io import read_results, results_dir, write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COMMON = {"epochs": 3, "batch_size": 32, "lr": 1e-4, "warmup": 0.1, "weight_decay": 0.01, "seed": 13}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recipe_id(task: str) -> str:
    """An id of the settings in occamtune's shipped config (comments aside): its cached run is
    measured again once they change."""
    import hashlib

    import yaml

    settings = yaml.safe_load(shipped_config(task).read_text())
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def shipped_config(task: str) -> Path:
    return ROOT / "configs" / ("ner-conll2003.yaml" if task == "ner" else "sst2.yaml")


def data_name(task: str, data: str) -> str:
    return "conll2003" if task == "ner" else data


def run_occamtune(task: str, out: Path, limit: int, epochs: float, data_root: Path = DATA,
                  model: str | None = None, data: str = "sst2", defaults: bool = False) -> dict:
    """occamtune's own recipe: the shipped config file (or, with `defaults`, no config file), with
    the epochs, batch size and seed that the comparison fixes."""
    import occamtune
    from occamtune.config import load_config

    config = None if defaults else shipped_config(task)
    overrides = [f"task={task}", f"data.path={data_root / data_name(task, data)}", f"output={out}",
                 "overwrite=true", f"train.epochs={epochs}",
                 f"train.batch_size={COMMON['batch_size']}", f"train.seed={COMMON['seed']}"]
    if limit:
        overrides.append(f"train.max_steps={limit}")
    if model:
        overrides.append(f"model.name={model}")
    cfg = load_config(config, overrides)
    start = time.perf_counter()
    run = occamtune.train(cfg, progress=False)
    test = run.metrics["test"]
    key = "f1" if task == "ner" else "accuracy"
    return {"test": test[key], "train_sents_per_s": run.train_sents_per_s,
            "wall_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "dev": run.metrics["dev"], "model_dir": str(out),
            "recipe_id": "defaults" if defaults else recipe_id(task)}


def run_hf(task: str, out: Path, limit: int, epochs: float, data_root: Path = DATA,
           model: str | None = None, data: str = "sst2", defaults: bool = False) -> dict:
    from benchmarks.hf_reference import hf_classify, hf_ner

    start = time.perf_counter()
    kw = {k: v for k, v in COMMON.items() if k != "epochs"}
    if task == "ner":
        result = hf_ner(data_root, out, epochs=epochs, limit=limit, model=model, **kw)
    else:
        result = hf_classify(data_root, out, epochs=epochs, limit=limit, model=model, name=data,
                             **kw)
    result.update(wall_s=time.perf_counter() - start, peak_rss_mb=peak_rss_mb())
    return result


def variant(args: argparse.Namespace, side: str) -> str:
    """What sets a run apart from the full default benchmark (whose names stay as they were)."""
    key = f"-{args.data}" if args.task == "classify" and args.data != "sst2" else ""
    key += "-defaults" if args.defaults and side == "occamtune" else ""
    return key + (f"-limit{args.limit}" if args.limit else "")


def side(args: argparse.Namespace) -> None:
    folder = args.side if args.task == "ner" else f"{args.side}-{args.task}"
    out = Path(args.workdir) / (folder + variant(args, args.side))
    fn = run_occamtune if args.side == "occamtune" else run_hf
    print(json.dumps(fn(args.task, out, args.limit, args.epochs, Path(args.data_root), args.model,
                        args.data, args.defaults)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", choices=["ner", "classify"], default="ner")
    parser.add_argument("--epochs", type=float, default=COMMON["epochs"])
    parser.add_argument("--limit", type=int, default=0, help="max training steps (smoke test only)")
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work"))
    parser.add_argument("--data", choices=["sst2", "subj"], default="sst2",
                        help="classification data set (<data-root>/<name>)")
    parser.add_argument("--defaults", action="store_true",
                        help="occamtune with no config file (the defaults a new user gets)")
    parser.add_argument("--data-root", default=str(DATA),
                        help="a folder holding conll2003/, sst2/, subj/")
    parser.add_argument("--model", help="model folder or name for both sides (default: MiniLM-L6)")
    parser.add_argument("--only", choices=["occamtune", "hf"], help="measure one side and stop")
    parser.add_argument("--rerun", action="store_true", help="measure sides already cached again")
    parser.add_argument("--side", choices=["occamtune", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return side(args)
    if not Path(args.data_root).exists():
        sys.exit(f"no data at {args.data_root}: this benchmark needs ../shared/data")
    results = {}
    for name in ("hf", "occamtune") if not args.only else (args.only,):
        cache = Path(args.workdir) / f"{args.task}-{name}{variant(args, name)}.json"
        cached = json.loads(cache.read_text()) if cache.is_file() and not args.rerun else None
        recipe = "defaults" if args.defaults else recipe_id(args.task)
        if cached and (name == "hf" or cached.get("recipe_id") == recipe):
            results[name] = cached  # measured in an earlier call (occamtune: the same recipe)
            continue
        cmd = [sys.executable, "-m", "benchmarks.vs_hf", "--task", args.task, "--side", name,
               "--epochs", str(args.epochs), "--limit", str(args.limit), "--workdir", args.workdir,
               "--data", args.data, "--data-root", args.data_root,
               *(["--model", args.model] if args.model else []),
               *(["--defaults"] if args.defaults else [])]
        print("running", name, flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-4000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(results[name]))
        if args.only == name:
            return
    write(args, results)


def write(args: argparse.Namespace, r: dict) -> None:
    metric = "f1" if args.task == "ner" else "accuracy"
    name = "ner_vs_hf" if args.task == "ner" else f"{args.data}_vs_hf"
    name += "_defaults" if args.defaults else ""
    name += f".limit{args.limit}" if args.limit else ""
    o, h = r["occamtune"], r["hf"]
    summary = {
        f"occamtune_test_{metric}": o["test"], f"hf_test_{metric}": h["test"],
        "occamtune_train_sents_per_s": o["train_sents_per_s"], "hf_train_sents_per_s": h["train_sents_per_s"],
        "throughput_ratio": o["train_sents_per_s"] / h["train_sents_per_s"],
        "occamtune_peak_rss_mb": o["peak_rss_mb"], "hf_peak_rss_mb": h["peak_rss_mb"],
        "occamtune_wall_s": o["wall_s"], "hf_wall_s": h["wall_s"],
        "epochs": args.epochs, "limit_steps": args.limit, "hf_settings": COMMON,
        "occamtune_config": "none (defaults)" if args.defaults else
        f"configs/{'ner-conll2003' if args.task == 'ner' else 'sst2'}.yaml", "raw": r,
        "data": data_name(args.task, args.data), "data_root": args.data_root,
        "model": args.model or "all-MiniLM-L6-v2",
    }
    interleaved = results_dir() / f"throughput_{args.task}.json"
    if interleaved.is_file() and not args.limit:  # full runs can overlap other jobs: the interleaved ratio is the fair one
        t, _ = read_results(interleaved)
        summary["interleaved_throughput"] = {k: t[k] for k in ("occamtune_train_sents_per_s",
                                                               "hf_train_sents_per_s", "ratio", "steps", "rounds")}
    md = table(summary)
    write_results(name, summary, md)
    print(md)


def table(summary: dict) -> str:
    """The Markdown table of a ner_vs_hf / sst2_vs_hf results record."""
    metric = "f1" if "occamtune_test_f1" in summary else "accuracy"
    task = "ner" if metric == "f1" else "classify"
    o, h = summary["raw"]["occamtune"], summary["raw"]["hf"]
    label = "entity F1 (test)" if metric == "f1" else "accuracy (test)"
    md = "\n".join([
        f"| {task} | {label} | train sents/s | peak RSS MB | wall s |", "|---|---|---|---|---|",
        f"| occamtune | {o['test']:.2f} | {o['train_sents_per_s']:.1f} | {o['peak_rss_mb']:.0f} | {o['wall_s']:.0f} |",
        f"| HF Trainer recipe | {h['test']:.2f} | {h['train_sents_per_s']:.1f} | {h['peak_rss_mb']:.0f} | {h['wall_s']:.0f} |",
        f"| ratio / difference | {o['test'] - h['test']:+.3f} | {summary['throughput_ratio']:.2f}x | | |",
    ])
    if "interleaved_throughput" in summary:
        t = summary["interleaved_throughput"]
        md += (f"\n| interleaved short runs (benchmarks/throughput.py, {t['rounds']} rounds x {t['steps']} steps) "
               f"| | {t['occamtune_train_sents_per_s']:.1f} vs {t['hf_train_sents_per_s']:.1f} = {t['ratio']:.2f}x | | |")
    return md + "\n"


if __name__ == "__main__":
    main()
