"""Decoding settings of trained generators against one another: greedy, repetition controls and
beam search, on the same runs and examples, without retraining.

    python -m benchmarks.decoding [RUN ...] [--setting NAME:key=value,key=value ...]
    -> benchmarks/results/decoding.json and .md (--name: another record)

RUN defaults to the three sides of `python -m benchmarks.warm_start --max-train 600` (the
warm-started MiniLM encoder-decoders, untied and shared, and SmolLM2 cut to 6 layers). Each
setting is given to `occamtune.load(RUN, decoding=...)`, as `occamtune evaluate RUN
--generate.KEY VALUE` gives it, and the run is scored on its own dev and test files: ROUGE-L,
ROUGE-1, chrF, mean words, `distinct` (texts that differ from one another) and `repeated`
(word trigrams that repeat one of the same text). Each setting's test texts are compared with
greedy decoding's by `benchmarks.generation.paired` (95% paired bootstrap intervals over the
same examples); the setting to ship is the one with the best dev ROUGE-L. Seconds are the wall
time of generating a split's texts, the settings of a run one after the other: indicative.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.generation import paired, rouge_gap
from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
WARM = ROOT / "benchmarks" / "work" / "warm_start"
RUNS = [WARM / "minilm2minilm", WARM / "minilm-share", WARM / "smollm2-6"]
GREEDY = {"num_beams": 1, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
SETTINGS = {
    "greedy": {},
    "no repeated 3-gram": {"no_repeat_ngram_size": 3},
    "repetition penalty 1.2": {"repetition_penalty": 1.2},
    "4 beams": {"num_beams": 4},
    "4 beams, no repeated 3-gram": {"num_beams": 4, "no_repeat_ngram_size": 3},
}
SCORES = ("rougeL", "rouge1", "bleu", "chrf", "mean_words", "distinct", "repeated")


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """`NAME:key=value,key=value` (values as `--generate.KEY` takes them)."""
    name, _, pairs = text.partition(":")
    if not name or not pairs:
        raise SystemExit(f"--setting {text!r}: write NAME:key=value[,key=value]")
    return name, dict(pair.split("=", 1) for pair in pairs.split(","))


def score_run(run: Path, settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every setting's dev and test scores on `run`, and its test texts against greedy's."""
    import occamtune
    from occamtune.api import split_file

    rows: dict[str, Any] = {}
    texts: dict[str, list[str]] = {}
    references: list[list[str]] = []
    for name, setting in settings.items():
        predictor = occamtune.load(run, decoding={**GREEDY, **setting})
        row: dict[str, Any] = {"decoding": setting}
        for split in ("dev", "test"):
            start = time.perf_counter()
            metrics = predictor.evaluate_file(split_file(run, split), write=False)
            row[split] = {k: metrics[k] for k in SCORES}
            row[split]["seconds"] = time.perf_counter() - start
        texts[name] = [o["prediction"] for o in metrics["outputs"]]
        references = [o["references"] for o in metrics["outputs"]]
        rows[name] = row
        print(f"{run.name} / {name}: dev ROUGE-L {row['dev']['rougeL']:.2f}, test "
              f"{row['test']['rougeL']:.2f}, repeated {row['test']['repeated']:.1f}%", flush=True)
    first = next(iter(settings))
    for name in list(settings)[1:]:
        rows[name]["vs_first"] = paired(references, texts[name], texts[first],
                                        names=(name, first))
    chosen = max(rows, key=lambda n: rows[n]["dev"]["rougeL"])
    return {"run": str(run), "settings": rows, "chosen_on_dev": chosen,
            "examples": [{"example": i, "references": references[i],
                          **{n: texts[n][i] for n in settings}} for i in range(3)]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="*", default=[str(r) for r in RUNS],
                   help="generate runs (default: the warm_start benchmark's three sides)")
    p.add_argument("--setting", action="append", default=None,
                   help="NAME:key=value[,key=value] (repeatable; default: greedy, repetition "
                        "controls, 4 beams); the first is the one the others are compared with")
    p.add_argument("--name", default="decoding", help="results/<name>.json and .md")
    args = p.parse_args()

    settings = dict(parse_setting(s) for s in args.setting) if args.setting else SETTINGS
    missing = [r for r in args.runs if not (Path(r) / "occamtune.json").is_file()]
    if missing:
        raise SystemExit(f"no run at {', '.join(missing)}: run `python -m benchmarks.warm_start "
                         "--max-train 600` first, or name generate runs")
    summary = {"runs": {Path(r).name: score_run(Path(r), settings) for r in args.runs}}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    head = ("| run | decoding | dev ROUGE-L | test ROUGE-L | vs first, 95% interval | test chrF | "
            "words | distinct % | repeated trigrams % | test s |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for run, record in summary["runs"].items():
        for name, row in record["settings"].items():
            cell = rouge_gap(row["vs_first"]) if "vs_first" in row else ""
            mark = " (best on dev)" if name == record["chosen_on_dev"] else ""
            t = row["test"]
            lines.append(f"| {run} | {name}{mark} | {row['dev']['rougeL']:.2f} | "
                         f"{t['rougeL']:.2f} | {cell} | {t['chrf']:.2f} | {t['mean_words']:.1f} | "
                         f"{t['distinct']:.0f} | {t['repeated']:.1f} | {t['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
