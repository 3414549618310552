"""Compressing an encoder-decoder generator: structured pruning of both halves, and dropping
decoder layers.

    python -m benchmarks.seq2seq_compress [--base RUN] [--pipeline P ...]
    -> benchmarks/results/seq2seq_compress.json + .md

RUN is an encoder-decoder generate run; by default the BERT2BERT side of
`python -m benchmarks.warm_start --max-train 600` (MiniLM warm-started as both halves, untied,
fine-tuned on 600 SciTLDR-A examples). Each --pipeline is run by `occamtune.compress_run` on it
(the methods that train do so on the run's own training file, epochs and learning rate), one
after the other, and the artifact is scored on the run's dev and test files, as the run itself
is, with the run's decoding settings. Bytes are the packed artifact's (`model.occ`, floats
in fp16) against the run's float32 safetensors.

Speed is `benchmarks/generation_speed.py` with `--artifact` (tokens/s at batch 1 and 8, in
alternation with the float32 model in one run).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.results_io import write_results
from benchmarks.vs_hf import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "benchmarks" / "work" / "warm_start" / "minilm2minilm"
PIPELINES = ["distill(layers=3)", "structured(heads=0.25, ffn=0.5)",
             "distill(layers=3), structured(heads=0.25, ffn=0.5)"]
SCORES = ("rougeL", "rouge1", "rouge2", "bleu", "chrf", "mean_words")


def scores(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in SCORES}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(BASE), help="an encoder-decoder generate run")
    p.add_argument("--pipeline", nargs="*", default=PIPELINES)
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "seq2seq_compress"))
    p.add_argument("--name", default="seq2seq_compress", help="results/<name>.json and .md")
    args = p.parse_args()

    import occamtune

    base, work = Path(args.base), Path(args.workdir)
    if not (base / "occamtune.json").is_file():
        raise SystemExit(f"no run at {base}: run `python -m benchmarks.warm_start --max-train 600` "
                         "first, or give --base RUN (an encoder-decoder generate run)")
    rows = [{"pipeline": "fine-tuned float32", "folder": str(base),
             "bytes": (base / "model.safetensors").stat().st_size,
             "dev": scores(occamtune.evaluate(base, split="dev", write=False)),
             "test": scores(occamtune.evaluate(base, split="test", write=False))}]
    for i, pipeline in enumerate(args.pipeline):
        out = work / f"p{i}"
        start = time.perf_counter()
        result = occamtune.compress_run(base, pipeline, out, overwrite=True, evaluate=True,
                                        progress=False)
        wall = time.perf_counter() - start
        rows.append({"pipeline": pipeline, "folder": str(out),
                     "bytes": result["sizes"]["model_occ"],
                     "dev": scores(occamtune.evaluate(out, split="dev", write=False)),
                     "test": scores(result["test"]), "compress_wall_s": wall})
        print(f"{pipeline}: {rows[-1]['bytes']:,} bytes, test ROUGE-L {rows[-1]['test']['rougeL']:.2f}",
              flush=True)
    summary = {"base": str(base), "rows": rows, "peak_rss_mb": peak_rss_mb()}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    rows = summary["rows"]
    fp32 = rows[0]["bytes"]
    lines = ["| model | bytes | x smaller | dev ROUGE-L | test ROUGE-L | test chrF | compress min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        wall = r.get("compress_wall_s")
        lines.append(
            f"| `{r['pipeline']}` | {r['bytes']:,} | {fp32 / r['bytes']:.2f} | "
            f"{r['dev']['rougeL']:.2f} | {r['test']['rougeL']:.2f} | {r['test']['chrf']:.2f} | "
            f"{'' if wall is None else f'{wall / 60:.1f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
