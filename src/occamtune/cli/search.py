"""Sub-commands `shrink`, `report` and `mdl` for the `occamtune` command.

`occamtune.cli.build_parser` calls `add_commands(subparsers)`; each handler prints a JSON summary and returns
the exit code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from occamtune.cli.options import add_decoding_options, decoding_options
from occamtune.errors import ConfigError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in "90m", "2h", "1h30m", "45s" or a plain number of seconds ("300")."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"--budget must be a duration like 90m, 2h, 1h30m or 300 (seconds), "
                          f"got {text!r}")
    return sum(float(n) * UNITS[u] for n, u in parts)


def add_commands(subparsers: Any) -> None:
    """Add `shrink`, `report` and `mdl` to the `occamtune` command's sub-parsers."""
    p = subparsers.add_parser("shrink", help="search for the smallest model within --max-drop")
    p.add_argument("model", help="a trained run folder")
    p.add_argument("--output", required=True, help="folder for candidates, records, chosen model")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="largest allowed loss of the dev metric, in points (default 1.0)")
    p.add_argument("--budget", help="stop starting trials after this time, e.g. 90m, 2h")
    p.add_argument("--trials", type=int, help="trials this worker runs")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUTPUT/study.db); "
                                     "workers on one storage and --study cooperate")
    p.add_argument("--study", default=None, help="study name (default 'shrink')")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--space", nargs="*", default=[], metavar="FIELD=V1,V2",
                   help="restrict the search space, e.g. bits=4,3 distill_layers=0,3")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-finalize", action="store_true",
                   help="only run trials (a worker); another process on the study chooses")
    p.add_argument("--objective", choices=["size", "latency", "both"], default="size",
                   help="which model within --max-drop to choose: the smallest (default), the "
                        "fastest, or both (the least bytes x latency)")
    p.add_argument("--max-latency-ms", type=float, default=None, metavar="MS",
                   help="choose only among models at most this many ms per sentence (batch 32)")
    p.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8"], default=None,
                   help="measure each candidate as `load` runs it (torch) or as its ONNX "
                        "export (onnx: `export --weights auto`, what ships; onnx-int8: "
                        "`--weights auto-int8`, 4-bit codes on the int8 kernels, faster, not "
                        "exact); default onnx when --objective or --max-latency-ms involves "
                        "speed, else torch")
    p.add_argument("--retry-factor", type=float, default=None, metavar="X",
                   help="retry with quantization-aware training a candidate that missed "
                        "--max-drop by at most X times it (default 1.5; 1: no retries)")
    p.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                   help="a running trial's heartbeat; silent for 4 of them, it is failed and "
                        "retried (its worker died)")
    add_decoding_options(p)
    p.set_defaults(func=_shrink)

    p = subparsers.add_parser("report", help="write report.html and report.md for a shrink folder")
    p.add_argument("folder", help="the --output folder of `occamtune shrink`")
    p.set_defaults(func=_report)

    p = subparsers.add_parser("mdl", help="prequential code length of a data set under an encoder")
    from occamtune.tasks import TASKS

    p.add_argument("--task", choices=sorted(TASKS), default="ner")
    p.add_argument("--data", required=True, help="folder with a training file")
    p.add_argument("--model", default="minilm", help="'minilm', 'smollm2', a model folder or a GGUF file")
    p.add_argument("--max-sentences", type=int, default=None)
    p.add_argument("--seed", type=int, default=13)
    p.set_defaults(func=_mdl)


def _shrink(args: argparse.Namespace) -> int:
    from occamtune.api import shrink
    from occamtune.search.space import parse_space
    from occamtune.search.trial import Measure

    measure = Measure() if args.retry_factor is None else Measure(retry_factor=args.retry_factor)
    result = shrink(args.model, args.output, max_drop=args.max_drop, budget_trials=args.trials,
                    budget_seconds=parse_duration(args.budget) if args.budget else None,
                    storage=args.storage, study_name=args.study, seed=args.seed,
                    space=parse_space(args.space), progress=not args.quiet,
                    finalize_search=not args.no_finalize, heartbeat_s=args.heartbeat,
                    objective=args.objective, max_latency_ms=args.max_latency_ms,
                    runtime=args.runtime, decoding=decoding_options(args), measure=measure)
    keys = ("trials", "base_bytes", "chosen_bytes", "size_ratio", "base_dev_metric",
            "chosen_dev_metric", "base_test_metric", "chosen_test_metric", "chosen_pipeline",
            "chosen_latency_ms", "latency_ratio", "runtime", "search_wall_s")
    print(json.dumps({"output": str(result.output),
                      **{k: result.summary.get(k) for k in keys}}))
    if result.chosen is None and not args.no_finalize:
        print(no_choice_hint(result.summary, args.max_drop), file=sys.stderr)
    return 0


def no_choice_hint(summary: dict, max_drop: float) -> str:
    """What a search that chose nothing says, and what to change."""
    failed = summary.get("failures") or []
    if failed:  # a failing method is not fixed by a longer budget: say first what failed
        last = failed[-1]
        failed_text = (f"shrink: {len(failed)} trial(s) failed; the last, trial {last['trial']} "
                       f"({last['pipeline']}): {last['reason']} (all in shrink.json, "
                       "'failures'): leave that method out of --space or fix the cause.\n")
    else:
        failed_text = ""
    states = summary.get("trials") or {}
    ended = ", ".join(f"{n} {state}" for state, n in states.items() if n and state != "waiting")
    minutes = (summary.get("search_wall_s") or 0) / 60
    limit = summary.get("max_latency_ms")
    within = f" at most {limit:g} ms per sentence and" if limit else ""
    return failed_text + (
        f"shrink: no model{within} stayed within {max_drop:g} of the base's dev metric "
        f"({ended or 'no trial ended'} in {minutes:.0f} min; 'pruned' trials were stopped "
            "early as too far off). Give it a longer --budget (trials that train a student or "
            "prune gradually take about as long as a fine-tune), a larger --max-drop, or a space "
            "of methods that train nothing, e.g. --space distill_layers=0 heads=0.0 ffn=0.0 "
            "sparsity=0.0 quant_epochs=0. The search's cache is kept: the same command with "
            "a longer budget goes on from here." + (
                " A larger --max-latency-ms also admits more models." if limit else ""))


def _report(args: argparse.Namespace) -> int:
    from occamtune.api import report

    html, md = report(args.folder)
    print(json.dumps({"html": str(html), "markdown": str(md)}))
    return 0


def _mdl(args: argparse.Namespace) -> int:
    from occamtune.api import codelength

    out = codelength(args.task, args.data, args.model, max_sentences=args.max_sentences,
                     seed=args.seed)
    print(json.dumps(out))
    return 0
