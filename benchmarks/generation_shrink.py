"""The shrink search on a SmolLM2 summarizer, against the same model written as GGUF Q4_1.

    python -m benchmarks.generation_shrink --base benchmarks/work/generation/scitldr-occamtune
    -> benchmarks/results/generation_shrink.json + .md

BASE is a generate run (by default the occamtune side of `python -m benchmarks.generation`, a
SmolLM2 fine-tuned on a SciTLDR-A slice). In one run: the fine-tuned model written as GGUF Q4_1
(`occamtune export --gguf q4_1`, llama.cpp's format; its size is the anchor, its quality is not
measured here: llama-cpp-python is not installed on this machine), the packaged SmolLM2 Q4_1 file
(98 MB), then `occamtune.shrink` with a tolerance of --max-drop ROUGE-L points on the run's dev
split, its choice confirmed once on test. With --no-gguf (a base llama.cpp cannot run, such
as the warm-started encoder-decoder of `benchmarks/warm_start.py`) there is no GGUF anchor, and
the choice is measured against the fine-tuned float32 safetensors alone. The choice's test
texts are compared with the run's on the same examples (a paired bootstrap interval); with
--export, so are those of its ONNX files.

The search space (--space) is small on purpose: each candidate of a 135M-parameter generator
costs a compression and a generation pass over dev. Its default holds what the byte count
needs: 32.7 MB, a third of the Q4_1 file, is about 2 bits per weight for the whole model, so the
candidates remove half of each MLP's neurons (with the unpruned model as teacher for the
recovery), trim the vocabulary to the tokens of the training data (the tied output layer too;
the dropped rows as rank-32 codes, so that a source word unseen in training still reads as
itself), and store 4-bit attention with 3-bit MLP weights (GPTQ, groups of 128).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.families import measured_candidates
from benchmarks.generation import paired, rouge_gap
from benchmarks.results_io import write_results
from benchmarks.vs_hf import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
SPACE = ["distill_layers=0", "heads=0.0", "ffn=0.5", "prune_epochs=2", "sparsity=0.0",
         "lowrank_energy=0.0", "vocab_trim=true", "vocab_rank=32", "codebook=false", "bits=4",
         "ffn_bits=3", "group_size=128", "rounding=gptq", "quant_epochs=0"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "benchmarks" / "work" / "generation" / "scitldr-occamtune"))
    p.add_argument("--max-drop", type=float, default=1.0)
    p.add_argument("--trials", type=int, default=2)
    p.add_argument("--budget-min", type=float, default=None,
                   help="search for this many minutes instead of --trials trials")
    p.add_argument("--export", nargs="*", default=[], metavar="WEIGHTS",
                   help="also write the choice by `occamtune export --weights WEIGHTS` (e.g. int4 "
                        "int8) and score each file on dev and test")
    p.add_argument("--no-gguf", action="store_true",
                   help="no GGUF Q4_1 anchor: for a base llama.cpp cannot run (an encoder-decoder)")
    p.add_argument("--space", nargs="*", default=SPACE)
    p.add_argument("--anchor", default="smollm2", help="the packaged GGUF file ('' for none)")
    p.add_argument("--output", default=None,
                   help="work folder (default: benchmarks/work/<name>)")
    p.add_argument("--name", default="generation_shrink", help="results/<name>.json and .md")
    p.add_argument("--no-new-trials", action="store_true",
                   help="only finalize a search that ran (or was stopped) earlier in --output")
    p.add_argument("--gguf-quality", nargs="*", default=None, metavar="TYPE",
                   help="also score the run written as GGUF of these types (none named: q4_1) "
                        "on dev and test with llama.cpp, e.g. f32 q4_1: f32 checks that llama.cpp "
                        "writes what the run writes (needs llama-cpp-python: pip install -e "
                        ".[llama])")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp's threads (--gguf-quality)")
    args = p.parse_args()

    import occamtune
    from occamtune.models import resolve_model
    from occamtune.search.space import parse_space

    base = Path(args.base)
    out = Path(args.output or ROOT / "benchmarks" / "work" / args.name)
    if not (base / "occamtune.json").is_file():
        raise SystemExit(f"no run at {base}: run `python -m benchmarks.generation` first, or give "
                         "--base RUN (a SmolLM2 generate run)")
    out.mkdir(parents=True, exist_ok=True)
    gguf = {} if args.no_gguf else occamtune.export_gguf(base, out / "base.q4_1.gguf",
                                                         qtype="q4_1", overwrite=True)
    anchor = Path(resolve_model(args.anchor)) if args.anchor else None
    start = time.perf_counter()
    budget = ({"budget_seconds": 0.0} if args.no_new_trials
              else {"budget_seconds": 60 * args.budget_min} if args.budget_min
              else {"budget_trials": args.trials})
    result = occamtune.shrink(base, out / "search", max_drop=args.max_drop,
                              space=parse_space(args.space), progress=False, **budget)
    s = result.summary
    q4 = None if args.no_gguf else (out / "base.q4_1.gguf").stat().st_size
    chosen = s.get("chosen_bytes")
    summary = {
        "base": str(base), "base_bytes": s["base_bytes"],
        "base_dev_rougeL": s.get("base_dev_metric"), "base_test_rougeL": s.get("base_test_metric"),
        "base_q4_1_bytes": q4, "base_q4_1_types": gguf.get("types"),
        "packaged_gguf": str(anchor) if anchor else None,
        "packaged_gguf_bytes": anchor.stat().st_size if anchor and anchor.is_file() else None,
        "chosen_pipeline": s.get("chosen_pipeline"), "chosen_bytes": chosen,
        "chosen_dev_rougeL": s.get("chosen_dev_metric"),
        "chosen_test_rougeL": s.get("chosen_test_metric"),
        "x_smaller_than_q4_1": q4 / chosen if chosen and q4 else None,
        "x_smaller_than_fp32": s["base_bytes"] / chosen if chosen else None,
        "trials": s.get("trials"), "failures": s.get("failures", []),
        "candidates": measured_candidates(out / "search"),
        "pruned": pruned_trials(out / "search" / "study.db"), "max_drop": args.max_drop,
        # the study's own wall time, over every session that ran it
        "space": args.space, "search_wall_s": s.get("search_wall_s", time.perf_counter() - start),
        "peak_rss_mb": peak_rss_mb(),
    }
    summary["chosen_vs_base_test"] = vs_base(base, out / "search" / "chosen")
    summary["chosen_exports"] = {w: exported(base, out / "search" / "chosen", out / f"chosen.{w}", w)
                                 for w in args.export if chosen}
    if args.gguf_quality is not None:
        quality = {}
        for qtype in args.gguf_quality or ["q4_1"]:
            path = out / f"base.{qtype}.gguf"
            if not path.is_file():
                occamtune.export_gguf(base, path, qtype=qtype, overwrite=True)
            quality[qtype] = {**gguf_quality(base, path, args.threads),
                              "bytes": path.stat().st_size}
        summary["base_gguf_quality"] = quality
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def exported(base: Path, chosen: Path, folder: Path, weights: str) -> dict:
    """The choice written by `occamtune export --weights WEIGHTS` into `folder`: its bytes (all
    its ONNX files), its dev and test ROUGE-L, and its test texts against the run's."""
    import occamtune
    from occamtune.api import split_file

    info = occamtune.export(chosen, folder, weights=weights, overwrite=True, exporter="torchscript")
    predictor = occamtune.load(folder)  # loaded once for both splits; eval_<split>.json written
    scores = {split: predictor.evaluate_file(split_file(folder, split), name=split)
              for split in ("dev", "test")}
    return {"bytes": int(info["bytes"]), "nbits": info.get("nbits"),
            **{f"{split}_rougeL": m["rougeL"] for split, m in scores.items()},
            "vs_base_test": vs_base(base, folder)}


def vs_base(base: Path, chosen: Path) -> dict | None:
    """The choice's test ROUGE-L minus the run's on the same examples, with
    `benchmarks.generation.paired`'s 95% interval (from both folders' `eval_test.json`); None
    without a choice."""
    import json

    files = [folder / "eval_test.json" for folder in (base, chosen)]
    if not all(f.is_file() for f in files):
        return None
    theirs, ours = (json.loads(f.read_text())["outputs"] for f in files)
    return paired([o["references"] for o in ours], [o["prediction"] for o in ours],
                  [o["prediction"] for o in theirs], names=("chosen", "base"))


def gguf_quality(base: Path, gguf: Path, threads: int) -> dict:
    """The scores of `gguf` (the run written by llama.cpp's Q4_1) on the run's dev and test
    files, generated by llama.cpp as the run decodes (greedy, its end of text, its maximum of
    new tokens) from the run's own prompts; {"missing": why} without llama-cpp-python."""
    try:
        import llama_cpp  # noqa: F401  (only whether it is there)
    except ImportError as err:
        return {"missing": f"llama-cpp-python is not installed ({err}); pip install -e .[llama]"}
    from benchmarks.generation_speed import LlamaCppSide, _version
    from occamtune.api import split_file
    from occamtune.inference import Predictor

    predictor = Predictor(base)
    extra = predictor.model.head_config.extra
    out: dict = {"llama_cpp_version": _version("llama_cpp_python")}
    for split in ("dev", "test"):
        dataset = predictor.task.read(split_file(base, split), predictor.data)
        prompts = [list(f["input_ids"][: f["prompt"]]) for f in predictor.encode(dataset)]
        texts = LlamaCppSide(gguf, prompts, threads).texts(
            predictor.tokenizer, int(extra["max_new_tokens"]), int(extra["eos_id"]))
        scores = predictor.task.score(predictor.task.gold(dataset), texts)
        out[split] = {k: scores[k] for k in ("rougeL", "rouge1", "rouge2", "bleu", "chrf")}
    return out


def pruned_trials(db: Path) -> list[dict]:
    """The candidates the search dropped on the dev slice, with its reason (a candidate that
    loses far more than the tolerance there is neither saved nor measured on all of dev)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="shrink", storage=f"sqlite:///{db}")
    return [{"trial": t.number, "pipeline": t.user_attrs.get("pipeline"),
             "reason": t.user_attrs.get("pruned_because")}
            for t in study.trials if t.state == optuna.trial.TrialState.PRUNED
            and "duplicate_of" not in t.user_attrs]  # a re-proposal is no new candidate


def _gap(paired: dict) -> str:
    return f"{rouge_gap(paired)} against float32"


def table(summary: dict) -> str:
    def f(v: float | None, d: int = 2) -> str:
        return "-" if v is None else f"{v:,.{d}f}"

    s = summary
    scored = s.get("base_gguf_quality") or {}
    q4 = scored.get("q4_1") or {}
    q4_how = ", run by llama.cpp" if "dev" in q4 else ""
    choice = "No choice within the tolerance"
    if s["chosen_bytes"]:
        choice = (f"Choice: {s['base_bytes'] / s['chosen_bytes']:.1f}x smaller than the "
                  "fine-tuned float32" + (f", {f(s['x_smaller_than_q4_1'], 1)}x than its Q4_1 "
                                          "file" if s["base_q4_1_bytes"] else ""))
    lines = [
        "| model | bytes | dev ROUGE-L | test ROUGE-L |", "|---|---|---|---|",
        f"| fine-tuned float32 | {s['base_bytes']:,} | {f(s['base_dev_rougeL'])} | {f(s['base_test_rougeL'])} |",
        *([(f"| fine-tuned, GGUF Q4_1 (`occamtune export --gguf q4_1`{q4_how}) | "
           f"{s['base_q4_1_bytes']:,} | {f(q4.get('dev', {}).get('rougeL'))} | "
           f"{f(q4.get('test', {}).get('rougeL'))} |")] if s["base_q4_1_bytes"] else []),
        *(f"| fine-tuned, GGUF {qtype} (`occamtune export --gguf {qtype}`, run by llama.cpp) | "
          f"{r['bytes']:,} | {f(r.get('dev', {}).get('rougeL'))} | "
          f"{f(r.get('test', {}).get('rougeL'))} |" for qtype, r in scored.items() if qtype != "q4_1"),
        *([f"| packaged SmolLM2 GGUF Q4_1 (pretrained) | {f(s['packaged_gguf_bytes'], 0)} | | |"]
          if s["packaged_gguf"] else []),
        (f"| shrink's choice `{s['chosen_pipeline']}` | {f(s['chosen_bytes'], 0)} | "
         f"{f(s['chosen_dev_rougeL'])} | {f(s['chosen_test_rougeL'])} |"),
        *(f"| the choice, `occamtune export --weights {w}` | {r['bytes']:,} | "
          f"{r['dev_rougeL']:.2f} | {r['test_rougeL']:.2f} ({_gap(r['vs_base_test'])}) |"
          for w, r in (s.get("chosen_exports") or {}).items()),
        *(f"| measured `{c['pipeline']}` | {c['bytes']:,} | {c['dev_f1']:.2f} "
          f"(drop {c['dev_drop']:.2f}) | |" for c in s["candidates"]
          if c["pipeline"] != s["chosen_pipeline"]),
        "",
        (choice + f"; max drop {s['max_drop']} ROUGE-L on dev; trials: {s['trials']}; search "
         f"{s['search_wall_s'] / 60:.0f} min."),
        *([(f"The choice on the same test examples: ROUGE-L "
           f"{_gap(s['chosen_vs_base_test'])} (95% paired bootstrap).")] if s.get("chosen_vs_base_test") else []),
        *(f"Trial {x['trial']} failed (`{x['pipeline']}`): {x['reason']}"
          for x in s.get("failures") or []),
        *(f"Trial {x['trial']} dropped (`{x['pipeline']}`): {x['reason']}"
          for x in s.get("pruned") or []),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
