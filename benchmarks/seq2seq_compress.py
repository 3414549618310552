"""Compressing an encoder-decoder generator: structured pruning of both halves, and dropping
decoder layers.

    python -m benchmarks.seq2seq_compress [--base RUN] [--pipeline P ...]
    -> benchmarks/results/seq2seq_compress.json + .md

RUN is an encoder-decoder generate run; by default the BERT2BERT side of
`python -m benchmarks.warm_start --max-train 600` (MiniLM warm-started as both halves, untied,
fine-tuned on 600 SciTLDR-A examples for 4 epochs, the new cross-attention at its own rate).
Besides ROUGE, each model's test references' code length under teacher forcing (`data_bits`,
as `evaluate` reports it), the share of its texts that are distinct, and its source gain (the
share of that cost the own sources save against another example's, `benchmarks/source_use.py`)
say whether it still reads its source; each compressed model's test ROUGE-L is compared with
the fine-tuned model's on the same examples (`benchmarks.generation.paired`: the gap with its
95% paired bootstrap interval). Each --pipeline is run by
`occamtune.compress_run` on it, one after the other (the methods that train do so on the run's
training file and learning rate, for the epochs the pipeline gives), and the artifact is scored
on the run's dev and test files with the run's decoding settings. Bytes are the packed
artifact's (`model.occ`, floats in fp16) against the run's float32 safetensors.

With --onnx-int8 each model is also written by `occamtune export --weights int8` (ONNX
Runtime's dynamic int8 weights and activations, three graphs for an encoder-decoder) and that
export scored the same way: what quality the int8 file keeps.

--reuse keeps an artifact already written for the same pipeline (its folder is named after
the pipeline) and scores it again.

Speed is `benchmarks/generation_speed.py` with `--artifact` (tokens/s at batch 1 and 8, in
alternation with the float32 model in one run).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from benchmarks.generation import paired, rouge_gap
from benchmarks.results_io import write_results
from benchmarks.source_use import costs, run_config
from benchmarks.vs_hf import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "benchmarks" / "work" / "warm_start" / "minilm2minilm"
# two epochs of recovery training each, whatever the run's own
PIPELINES = ["distill(layers=3, epochs=2)", "vocab(rank=32)",
             ("distill(layers=3, epochs=2), structured(heads=0.25, ffn=0.5, epochs=2), "
              "vocab(rank=32)")]
SCORES = ("rougeL", "rouge1", "rouge2", "bleu", "chrf", "mean_words", "distinct", "data_bits")


def scores(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in SCORES}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(BASE), help="an encoder-decoder generate run")
    p.add_argument("--pipeline", nargs="*", default=PIPELINES)
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "seq2seq_compress"))
    p.add_argument("--name", default="seq2seq_compress", help="results/<name>.json and .md")
    p.add_argument("--reuse", action="store_true", help="keep artifacts already written")
    p.add_argument("--onnx-int8", action="store_true", help="also score each model's int8 export")
    args = p.parse_args()

    import occamtune
    from occamtune.api import split_file

    base, work = Path(args.base), Path(args.workdir)
    if not (base / "occamtune.json").is_file():
        raise SystemExit(f"no run at {base}: run `python -m benchmarks.warm_start --max-train 600` "
                         "first, or give --base RUN (an encoder-decoder generate run)")
    work.mkdir(parents=True, exist_ok=True)

    test_file = Path(run_config(base)["data"]["path"]) / "test.jsonl"

    texts: list[list[str]] = []  # each row's test texts, in the rows' order

    def scored(name: str, folder: Path, nbytes: int, **extra: object) -> dict:
        predictor = occamtune.load(folder)  # loaded once for both splits and the source gain
        metrics = predictor.evaluate_file(split_file(folder, "test"), write=False)
        test = scores(metrics)
        test["source_gain"] = costs(predictor, test_file, 10**9, 8)["gain"]
        texts.append([o["prediction"] for o in metrics["outputs"]])
        if len(texts) > 1:  # against the fine-tuned model's texts, on the same examples
            test["vs_fp32"] = paired([o["references"] for o in metrics["outputs"]], texts[-1],
                                     texts[0], names=("compressed", "fp32"))
        return {"pipeline": name, "folder": str(folder), "bytes": nbytes,
                "dev": scores(predictor.evaluate_file(split_file(folder, "dev"), write=False)),
                "test": test, **extra}

    rows = [scored("fine-tuned float32", base, (base / "model.safetensors").stat().st_size)]
    for pipeline in args.pipeline:
        out = work / re.sub(r"[^a-z0-9]+", "-", pipeline.lower()).strip("-")
        marker = work / f"{out.name}.json"  # the pipeline and the wall time of its artifact
        if not (args.reuse and marker.is_file() and (out / "model.occ").is_file()
                and json.loads(marker.read_text())["pipeline"] == pipeline):
            start = time.perf_counter()
            occamtune.compress_run(base, pipeline, out, overwrite=True, evaluate=False,
                                   progress=False)
            marker.write_text(json.dumps({"pipeline": pipeline,
                                          "compress_wall_s": time.perf_counter() - start}))
        rows.append(scored(pipeline, out, (out / "model.occ").stat().st_size,
                           compress_wall_s=json.loads(marker.read_text())["compress_wall_s"]))
        print(f"{pipeline}: {rows[-1]['bytes']:,} bytes, test ROUGE-L "
              f"{rows[-1]['test']['rougeL']:.2f}", flush=True)
    if args.onnx_int8:
        for row in list(rows):
            out = work / "onnx-int8" / Path(row["folder"]).name
            info = occamtune.export(row["folder"], out, weights="int8", overwrite=True,
                                    exporter="torchscript")
            rows.append(scored(f"{row['pipeline']}, ONNX int8", out, int(info["bytes"])))
    summary = {"base": str(base), "rows": rows, "peak_rss_mb": peak_rss_mb()}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    rows = summary["rows"]
    fp32 = rows[0]["bytes"]
    head = ("| model | bytes | x smaller | test code length, kbit | dev ROUGE-L | test ROUGE-L | "
            "vs fp32, 95% interval | test chrF | distinct test texts % | source gain % | "
            "compress min |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        wall = r.get("compress_wall_s")
        gap_text = rouge_gap(r["test"]["vs_fp32"]) if "vs_fp32" in r["test"] else ""
        lines.append(
            f"| `{r['pipeline']}` | {r['bytes']:,} | {fp32 / r['bytes']:.2f} | "
            f"{r['test']['data_bits'] / 1000:.1f} | "
            f"{r['dev']['rougeL']:.2f} | {r['test']['rougeL']:.2f} | {gap_text} | "
            f"{r['test']['chrf']:.2f} | "
            f"{r['test']['distinct']:.0f} | {r['test']['source_gain']:.2f} | "
            f"{'' if wall is None else f'{wall / 60:.1f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
