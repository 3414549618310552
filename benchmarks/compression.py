"""Every compression method alone and the best pipelines, against the fp32 model and ONNX Runtime
int8, on CoNLL-2003 with the fine-tuned MiniLM-L6. Same run, same test sentences, same machine.

    python benchmarks/compression.py --base benchmarks/work/occamtune    # a run from vs_hf.py
    -> benchmarks/results/compression.json and compression.md (or NAME.json and .md with --name)

Each entry runs in its own subprocess (peak memory is its own): compress a copy of the fine-tuned
model with the run's own training data and settings (methods that train use --epochs), write the
packed artifact, load it back as a user would, and measure bytes on disk, test entity F1, and
sentences/s at batch 1 and batch 32. The fp32 model's speed is measured in the same subprocess,
alternating with the entry's (two rounds each), and each speed-up is the ratio of the two: the
ratios hold better than the absolute sentences/s when the machine is busy, but still move with
the load (measure the rows to be compared together, or again with --rerun on an idle machine). An entry written
`<pipeline> | onnx-int8` exports the compressed model (e.g. a distilled student) to ONNX and
quantizes it with ONNX Runtime as `occamtune export` does (int8 with one scale per output channel):
occamtune's compression with ONNX Runtime as the CPU runtime. The peer keeps ONNX Runtime's
defaults (one scale per matrix).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results_io import provenance, results_dir, write_results

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 2  # alternating speed measurements of each model and the fp32 one
DISTILL_EPOCHS = 6  # other methods that train use --epochs
D3 = f"distill(layers=3, epochs={DISTILL_EPOCHS})"
D4 = f"distill(layers=4, epochs={DISTILL_EPOCHS})"
D5 = f"distill(layers=5, epochs={DISTILL_EPOCHS})"
FFN30 = "structured(heads=0, ffn=0.3, epochs=2)"  # with the unpruned student as teacher
QAT2 = "quantize(bits=4, group_size=128, epochs=2, lr=1e-4)"  # the shrink choice's 4-bit QAT
CB8_QAT2 = f"vocab(rank=128), codebook(dim=8, fallback_dim=8, centroid_bits=8), {QAT2}"
VOCAB_POS = "vocab(rank=128, positions=true)"  # the search's trimmed vocabulary
SMALL = "vocab(min_count=2, rank=32), quantize(bits=3, group_size=128, epochs=1)"  # + 1 epoch QAT

ENTRIES = {  # name -> pipeline ("" = the fp32 model itself; "onnx-int8" = the peer); run in this order
    "fp32": "",
    "onnx-int8 (peer)": "onnx-int8",
    "quantize 8-bit": "quantize(bits=8)",
    "quantize 4-bit": "quantize(bits=4, group_size=64)",
    "quantize 4-bit, int8 kernels": "quantize(bits=4, group_size=64, dynamic=true)",
    "quantize 3-bit": "quantize(bits=3, group_size=32)",
    "quantize 4-bit GPTQ": "quantize(bits=4, group_size=64, rounding=gptq)",
    "quantize 3-bit GPTQ": "quantize(bits=3, group_size=64, rounding=gptq)",
    "int8 dynamic (fp32 embeddings)": "quantize(bits=8, embeddings=false)",
    "vocab trim, unseen -> [UNK]": "vocab(rank=0)",
    "vocab trim, unseen at rank 32": "vocab(rank=32)",
    "vocab trim, unseen at rank 64": "vocab(rank=64)",
    "quantize 3-bit g128, QAT 1 epoch": "quantize(bits=3, group_size=128, epochs=1)",
    f"distill 3 layers ({DISTILL_EPOCHS} epochs)": D3,
    "pipeline: distill3 + int8": f"{D3}, quantize(bits=8, embeddings=false)",
    f"distill 4 layers ({DISTILL_EPOCHS} epochs)": D4,
    "pipeline: distill4 + int8": f"{D4}, quantize(bits=8, embeddings=false)",
    "pipeline: distill4, ONNX Runtime int8": f"{D4} | onnx-int8",
    "pipeline: distill4, ONNX Runtime int8 per matrix (its default)": f"{D4} | onnx-int8-per-matrix",
    "pipeline: distill5, ONNX Runtime int8": f"{D5} | onnx-int8",
    "pipeline: distill4 + structured FFN 30%, ONNX Runtime int8": f"{D4}, {FFN30} | onnx-int8",
    "pipeline: distill4 + structured FFN 20%, ONNX Runtime int8":
        f"{D4}, structured(heads=0, ffn=0.2, epochs=2) | onnx-int8",
    "pipeline: distill4 + structured FFN 20% (4 epochs), ONNX Runtime int8":
        f"{D4}, structured(heads=0, ffn=0.2, epochs=4) | onnx-int8",
    "pipeline: distill4 + structured FFN 10%, ONNX Runtime int8":
        f"{D4}, structured(heads=0, ffn=0.1, epochs=2) | onnx-int8",
    "pipeline: distill4 + vocab r64 + 4-bit GPTQ": f"{D4}, vocab(rank=64), quantize(bits=4, rounding=gptq)",
    "pipeline: distill4 + vocab (min count 2) r64 + 4-bit GPTQ g128":
        f"{D4}, vocab(min_count=2, rank=64), quantize(bits=4, group_size=128, rounding=gptq)",
    "pipeline: distill4 + vocab r64 + 3-bit GPTQ": f"{D4}, vocab(rank=64), quantize(bits=3, rounding=gptq)",
    "pipeline: vocab r32 + codebook + 4-bit GPTQ": "vocab(rank=32), codebook(), quantize(bits=4, rounding=gptq)",
    "pipeline: vocab r64 + codebook + 4-bit GPTQ": "vocab(rank=64), codebook(), quantize(bits=4, rounding=gptq)",
    "pipeline: codebook + 4-bit GPTQ": "codebook(), quantize(bits=4, rounding=gptq)",
    "pipeline: vocab r32 + codebook (uniform k-means) + 4-bit GPTQ":
        "vocab(rank=32), codebook(weighting=uniform), quantize(bits=4, rounding=gptq)",
    "pipeline: vocab r64 + codebook (uniform k-means) + 4-bit GPTQ":
        "vocab(rank=64), codebook(weighting=uniform), quantize(bits=4, rounding=gptq)",
    "pipeline: distill4 + FFN 30% + vocab r32 + codebook + 4-bit GPTQ":
        f"{D4}, {FFN30}, vocab(rank=32), codebook(), quantize(bits=4, rounding=gptq)",
    "pipeline: distill4 + FFN 30% + vocab r32 + codebook + 4-bit QAT":
        f"{D4}, {FFN30}, vocab(rank=32), codebook(), quantize(bits=4, epochs=1)",
    "pipeline: distill4 + vocab r32 + codebook + 4-bit GPTQ":
        f"{D4}, vocab(rank=32), codebook(), quantize(bits=4, rounding=gptq)",
    "pipeline: distill4 + vocab r32 + codebook + 4-bit g128, QAT 3 epochs + GPTQ":
        f"{D4}, vocab(rank=32), codebook(), quantize(bits=4, group_size=128, epochs=3, lr=1e-4, rounding=gptq)",
    "pipeline: distill4 + FFN 30% + vocab r32 + codebook + 4-bit g128, QAT 3 epochs + GPTQ":
        f"{D4}, {FFN30}, vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=3, lr=1e-4, rounding=gptq)",
    "pipeline: distill4 + FFN 30% + vocab r32 + codebook + 4-bit g128, QAT 6 epochs + GPTQ":
        f"{D4}, {FFN30}, vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=6, lr=1e-4, rounding=gptq)",
    "pipeline: distill4 + FFN 30% + vocab r32 + codebook + 4-bit g128, QAT 6 epochs at lr 2e-4 + GPTQ":
        f"{D4}, {FFN30}, vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=6, lr=2e-4, rounding=gptq)",
    "pipeline: distill5 + structured FFN 53%": f"{D5}, structured(heads=0, ffn=0.53, epochs=2)",
    "structured FFN 70%": "structured(heads=0, ffn=0.7, epochs=2)",
    "pipeline: distill5 + structured FFN 53%, ONNX Runtime int8":
        f"{D5}, structured(heads=0, ffn=0.53, epochs=2) | onnx-int8",
    "pipeline: distill5 + FFN 53% + vocab r32 + codebook + 4-bit g128, QAT 6 epochs + GPTQ":
        f"{D5}, structured(heads=0, ffn=0.53, epochs=2), vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=6, lr=1e-4, rounding=gptq)",
    # small and fast at once (issue 23): a student with fewer heads and neurons, so that its
    # 4-bit ONNX export has fewer FLOPs as well as fewer bytes
    "pipeline: distill5 + heads 25% + FFN 68% + vocab r32 + codebook + 4-bit g128, QAT 6 epochs + GPTQ":
        f"{D5}, structured(heads=0.25, ffn=0.68, epochs=2), vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=6, lr=1e-4, rounding=gptq)",
    # the same at 8 numbers per codebook sub-vector (48 bytes a word row, not 96): its ONNX file
    # under 20x, where the 4-bit weights then run on int8 kernels (`export --weights int4-int8`)
    "pipeline: distill5 + FFN 53% + vocab r32 + codebook d8 + 4-bit g128, QAT 6 epochs + GPTQ":
        f"{D5}, structured(heads=0, ffn=0.53, epochs=2), vocab(rank=32), codebook(dim=8), "
        "quantize(bits=4, group_size=128, epochs=6, lr=1e-4, rounding=gptq)",
    # toward 30x (issue 23) from the shrink search's choice (FFN 68%, vocab r128, codebook, 4-bit
    # QAT rounded to the nearest code): half or a third of the heads out, the kept word rows at 48
    # bytes (dim 8) and the centroids as 8-bit codes, the bytes `benchmarks/artifact_bits.py`
    # shows the choice spends most on after the weights' codes
    "pipeline: heads 50% + FFN 68% + vocab r128 + codebook d8 + 4-bit g128, QAT 2 epochs":
        f"structured(heads=0.5, ffn=0.68, epochs=2), {CB8_QAT2}",
    "pipeline: heads 33% + FFN 68% + vocab r128 + codebook d8 + 4-bit g128, QAT 2 epochs":
        f"structured(heads=0.33, ffn=0.68, epochs=2), {CB8_QAT2}",
    # each of the two changes alone, to see which costs the F1
    "pipeline: FFN 68% + vocab r128 + codebook d8 + 4-bit g128, QAT 2 epochs":
        f"structured(heads=0, ffn=0.68, epochs=2), {CB8_QAT2}",
    "pipeline: heads 33% + FFN 68% + vocab r128 + codebook + 4-bit g128, QAT 2 epochs":
        f"structured(heads=0.33, ffn=0.68, epochs=2), vocab(rank=128), codebook(fallback_dim=8), "
        f"{QAT2}",
    # the same search choice with the position rows cut to the run's max_length (as the search
    # does) and 8-bit centroids that stay codes through QAT: then the word rows at 48 bytes, or
    # only the tokens seen three times or more as full rows (the others as rank-128 codes)
    "pipeline: FFN 68% + vocab r128 + codebook d8 + 4-bit g128, QAT 2 epochs, positions cut":
        f"structured(heads=0, ffn=0.68, epochs=2), {VOCAB_POS}, "
        f"codebook(dim=8, fallback_dim=8, centroid_bits=8), {QAT2}",
    "pipeline: FFN 68% + vocab r128 (min count 3) + codebook + 4-bit g128, QAT 2 epochs, positions cut":
        "structured(heads=0, ffn=0.68, epochs=2), vocab(min_count=3, rank=128, positions=true), "
        f"codebook(fallback_dim=8, centroid_bits=8), {QAT2}",
    "pipeline: FFN 68% + vocab r128 + codebook + 4-bit g128, QAT 2 epochs, positions cut":
        f"structured(heads=0, ffn=0.68, epochs=2), {VOCAB_POS}, "
        f"codebook(fallback_dim=8, centroid_bits=8), {QAT2}",
    "pipeline: structured FFN 70% + vocab r32 + codebook + 4-bit g128, QAT 3 epochs + GPTQ":
        "structured(heads=0, ffn=0.7, epochs=2), vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=3, lr=1e-4, rounding=gptq)",
    "pipeline: structured FFN 70% + vocab r32 + codebook + 4-bit g128, QAT 3 epochs on hidden states + GPTQ":
        "structured(heads=0, ffn=0.7, epochs=2), vocab(rank=32), codebook(), "
        "quantize(bits=4, group_size=128, epochs=3, lr=1e-4, rounding=gptq, hidden_weight=1)",
    "pipeline: vocab r32 + codebook + 4-bit GPTQ, 3-bit FFN":
        "vocab(rank=32), codebook(), quantize(bits=4, ffn_bits=3, rounding=gptq)",
    "pipeline: vocab r32 + codebook + 4-bit, 3-bit FFN, QAT 2 epochs":
        "vocab(rank=32), codebook(), quantize(bits=4, ffn_bits=3, epochs=2, hidden_weight=1)",
    "pipeline: vocab + 3-bit QAT": SMALL,
    "pipeline: vocab r32 + 4-bit": "vocab(rank=32), quantize(bits=4)",
    "pipeline: vocab r64 + 4-bit": "vocab(rank=64), quantize(bits=4)",
    "pipeline: vocab r64 + 4-bit GPTQ": "vocab(rank=64), quantize(bits=4, rounding=gptq)",
    "pipeline: vocab r64 + 3-bit GPTQ": "vocab(rank=64), quantize(bits=3, rounding=gptq)",
    "pipeline: vocab (min count 2) r64 + 4-bit GPTQ g128":
        "vocab(min_count=2, rank=64), quantize(bits=4, group_size=128, rounding=gptq)",
    "pipeline: vocab r64 + 3-bit GPTQ, 4-bit embeddings":
        "vocab(rank=64), quantize(bits=3, rounding=gptq, embedding_bits=4)",
    "pipeline: distill3 + vocab + 3-bit QAT": f"{D3}, {SMALL}",
    "prune 50%": "prune(sparsity=0.5)",
    "prune 70% one-shot": "prune(sparsity=0.7)",
    "lowrank 0.9": "lowrank(energy=0.9)",
    "structured 25%": "structured(heads=0.25, ffn=0.25)",
    "prune 70% gradual": "prune(sparsity=0.7, gradual=true)",
    "share 3 groups": "share(groups=3)",
    "feature extraction": "feature(last_k=4)",
    "lora r8": "lora(r=8)",
}
QUICK = ["fp32", "onnx-int8 (peer)", "quantize 8-bit", "quantize 4-bit",
         "vocab trim, unseen at rank 32", "prune 50%", "lowrank 0.9"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model, splits, n_speed: int, reference=None) -> dict:
    """Test F1 and sentences/s at batch 1 and 32; with `reference` (the fp32 model), its speed is
    measured in alternation with the model's, so that the ratio holds on a busy machine too."""
    from occamtune import inference

    test = splits["test"]
    metrics = inference.evaluate(model, test.dataset, test.features)
    feats = sorted(test.features, key=lambda f: len(f.input_ids))[:: max(1, len(test.features) // n_speed)]
    out = {"test_f1": metrics["f1"], "data_bits": metrics["data_bits"]}
    for bs, some in ((1, feats[: n_speed // 4]), (32, feats)):
        runs = {"": model, "fp32_": reference or model}
        speed = {k: 0.0 for k in runs}
        for _ in range(ROUNDS):
            for k, m in runs.items():
                speed[k] += inference.throughput(m, some, bs) / ROUNDS
        for k, v in speed.items():
            out[f"{k}sents_per_s_b{bs}"] = v
    return out


def one(args: argparse.Namespace) -> dict:
    import torch

    from occamtune.compress import compress, parse_pipeline, save_artifact
    from occamtune.compress.run import load_run_data, make_context
    from occamtune.models import WEIGHTS_FILE, load_model, weights_identity

    torch.set_num_threads(args.threads)
    base = Path(args.base)
    model, tok, meta = load_model(base)
    cfg, splits = load_run_data(base, tok, model.labels, model.head_config)
    fp32_bytes = (base / WEIGHTS_FILE).stat().st_size
    pipeline = ENTRIES[args.one]
    start = time.perf_counter()
    out = {"name": args.one, "pipeline": pipeline, "base_id": weights_identity(base)}
    steps, _, runtime = pipeline.partition(" | ")  # "<pipeline> | onnx-int8": then exported
    folder = Path(args.workdir) / "compressed" / args.one.replace(" ", "_").replace(":", "")
    if steps in ("", "onnx-int8"):
        out["bytes"] = fp32_bytes
        run = small = model
    else:
        cfg.train.epochs = args.epochs
        ctx = make_context(cfg, splits, tok, progress=False, teacher=model)  # QAT learns from it
        configs = parse_pipeline(steps)
        small, configs = _cached_student(model, tok, configs, ctx,
                                         Path(args.workdir) / "cache" / out["base_id"], args.epochs)
        small = compress(small, configs, ctx) if configs else small
        sizes = save_artifact(small, tok, folder, meta=meta.derived("artifact", fp32_bytes=fp32_bytes))
        out["sizes"] = sizes
        out["bytes"] = sum(f.stat().st_size for f in folder.glob("model.occ"))
        run, _, _ = load_model(folder)  # what a user gets back (int8 kernels where asked for)
    if steps == "onnx-int8" or runtime.startswith("onnx-int8"):  # ONNX Runtime int8 of the model (or student)
        from occamtune.export import OnnxTaskModel, export_onnx

        peer = steps == "onnx-int8"  # the peer runs with ONNX Runtime's defaults
        target = Path(args.workdir) / "peer" if peer else folder
        per_channel = not peer and runtime != "onnx-int8-per-matrix"
        # the exporter the recorded results were measured with (the graph feeds ORT's quantizer)
        path = export_onnx(small, target / "model.int8.onnx", quantize_int8=True,
                           per_channel=per_channel, exporter="torchscript")
        out["bytes"] = path.stat().st_size
        run = OnnxTaskModel(path, model.head_config, threads=args.threads)
    out["compress_s"] = time.perf_counter() - start
    out.update(measure(run, splits, args.n_speed, reference=None if run is model else model))
    out["peak_rss_mb"] = peak_rss_mb()
    out["fp32_bytes"] = fp32_bytes
    out["base"], out["epochs"] = str(base.resolve()), args.epochs
    out["provenance"] = provenance()  # entries are measured in different runs
    return out


def _cached_student(model, tok, configs: list, ctx, cache: Path, epochs: float) -> tuple:
    """A pipeline that starts with steps of methods that train (distillation, structured
    pruning...: `trains`) reuses what another entry trained with the same steps and epochs from
    the same teacher (`cache` is the teacher's own folder): returns (model, the configs left to
    apply)."""
    import copy

    from occamtune.compress import compress, format_pipeline, save_artifact
    from occamtune.models import load_model

    model = copy.deepcopy(model)
    n = 0
    while n < len(configs) and configs[n].trains:
        n += 1
        folder = cache / f"{format_pipeline(configs[:n])}-epochs{epochs:g}".replace(" ", "")
        if (folder / "occamtune.json").is_file():
            model = load_model(folder, runtime=False)[0]
        else:
            model = compress(model, configs[n - 1:n], ctx)
            save_artifact(model, tok, folder, codec="none", half_floats=False)  # lossless
    return model, configs[n:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default=str(ROOT / "benchmarks" / "work" / "occamtune"),
                   help="a fine-tuned occamtune run folder (benchmarks/vs_hf.py writes one)")
    p.add_argument("--only", nargs="*", help="entry names to run (default: all)")
    p.add_argument("--quick", action="store_true", help="only the methods that need no training")
    p.add_argument("--epochs", type=float, default=1.0, help="fine-tuning epochs of methods that train")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-speed", type=int, default=512, help="test sentences timed")
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "compression"))
    p.add_argument("--name", default="compression",
                   help="results record: benchmarks/results/NAME.json (its entries: this base's)")
    p.add_argument("--rerun", action="store_true",
                   help="measure the --only entries again even when recorded for this model (a "
                        "speed pass on an idle machine); the new record replaces the old in the "
                        "table, both stay in compression.partial.jsonl")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    if not (Path(args.base) / "model.safetensors").is_file():
        sys.exit(f"no fine-tuned model at {args.base}: run `python -m benchmarks.vs_hf --task ner` first")
    from occamtune.models import weights_identity

    names = args.only or (QUICK if args.quick else list(ENTRIES))
    partial = results_dir() / "compression.partial.jsonl"
    base_id = weights_identity(args.base)
    done = {}
    if partial.is_file():
        for line in partial.read_text().splitlines():
            rec = json.loads(line)
            if (rec.get("base_id") == base_id and rec.get("epochs") == args.epochs
                    and ENTRIES.get(rec["name"]) == rec["pipeline"] and "fp32_sents_per_s_b32" in rec):
                done[rec["name"]] = rec  # measured earlier in this benchmark, same model and entry
                # (base_id: a model trained again in the same folder is another model)
    for name in names:
        if name in done and not (args.rerun and args.only):
            continue
        print("running", name, flush=True)
        cmd = [sys.executable, "-m", "benchmarks.compression", "--one", name, "--base", args.base,
               "--epochs", str(args.epochs), "--threads", str(args.threads),
               "--n-speed", str(args.n_speed), "--workdir", args.workdir]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"{name} FAILED:\n{proc.stderr[-3000:]}", flush=True)
            continue
        done[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "a") as fh:
            fh.write(json.dumps(done[name]) + "\n")
    write(done, args)


def write(records: dict, args: argparse.Namespace) -> None:
    base = records.get("fp32")
    peer = records.get("onnx-int8 (peer)")
    rows = []
    for r in (records[name] for name in ENTRIES if name in records):
        row = dict(r)
        row["ratio"] = r["fp32_bytes"] / r["bytes"]
        if base:
            row["f1_drop"] = base["test_f1"] - r["test_f1"]
        row["speedup_b1"] = r["sents_per_s_b1"] / r["fp32_sents_per_s_b1"]  # same-time fp32 speed
        row["speedup_b32"] = r["sents_per_s_b32"] / r["fp32_sents_per_s_b32"]
        rows.append(row)
    summary = {"entries": rows, "epochs_for_training_methods": args.epochs, "threads": args.threads,
               "targets": _targets(rows, base, peer)}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def table(summary: dict) -> str:
    """The Markdown table of a compression results file (its "entries", in the order run)."""
    rows = summary["entries"]
    lines = ["| model | bytes | x smaller | test F1 | drop | sents/s b1 | x | sents/s b32 | x | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['bytes']:,} | {r['ratio']:.1f} | {r['test_f1']:.2f} | "
                     f"{r.get('f1_drop', 0):+.2f} | {r['sents_per_s_b1']:.1f} | {r.get('speedup_b1', 1):.2f} | "
                     f"{r['sents_per_s_b32']:.1f} | {r.get('speedup_b32', 1):.2f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def _targets(rows: list[dict], base: dict | None, peer: dict | None) -> dict:
    if not base:
        return {}
    ok = [r for r in rows if r.get("f1_drop", 99) <= 1.0  # occamtune's own models
          and r["name"] not in (base["name"], peer and peer["name"])]
    best_small = max(ok, key=lambda r: r["ratio"], default=None)
    best_fast = max(ok, key=lambda r: r.get("speedup_b32", 0), default=None)
    out = {"smallest_within_1f1": best_small and {k: best_small[k] for k in ("name", "ratio", "f1_drop")},
           "fastest_within_1f1": best_fast and {k: best_fast[k] for k in ("name", "speedup_b32", "f1_drop")}}
    peer_row = next((r for r in rows if peer and r["name"] == peer["name"]), None)
    if peer_row and best_fast:  # ratios to the fp32 speed measured beside each: comparable
        out["fastest_vs_peer_b32"] = best_fast["speedup_b32"] / peer_row["speedup_b32"]
        out["peer_f1_drop"] = peer_row.get("f1_drop")
        at_peer = [r for r in ok if r["test_f1"] >= peer_row["test_f1"]]
        best = max(at_peer, key=lambda r: r.get("speedup_b32", 0), default=None)
        out["fastest_at_peer_f1_or_better"] = best and {
            "name": best["name"], "speedup_b32": best["speedup_b32"], "f1_drop": best["f1_drop"],
            "vs_peer_b32": best["speedup_b32"] / peer_row["speedup_b32"]}
    return out


if __name__ == "__main__":
    main()
