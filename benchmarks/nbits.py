"""Small and fast in one file: a 4-bit artifact exported as ONNX Runtime `MatMulNBits`, against
the fp32 model in torch, the artifact in torch and ONNX Runtime's int8 export of the fp32 model.

    python -m benchmarks.nbits --base benchmarks/work/occamtune \\
        --artifact benchmarks/work/compression/compressed/quantize_4-bit
    -> benchmarks/results/nbits.json and nbits.md (--name: another record)

All models run in this one process, one thread each by default (--threads), and are timed in
alternation (--rounds rounds of every model in turn, each round on the same test sentences), so
that the ratios hold on a busy machine. For each: bytes on disk (the file the runtime reads:
model.safetensors, model.occ, model.onnx or model.onnx.zst), dev and test metric (an artifact
is chosen on dev), sentences/s at batch 1 and batch 32. The exports are cached per artifact
(--workdir).

Rows:
    fp32 (torch): the fine-tuned run.
    artifact (torch): the 4-bit artifact as `load` runs it (float weights in torch).
    ONNX int8: `occamtune export` of the fp32 run (ONNX Runtime dynamic int8, per channel).
    ONNX int4: `occamtune export --weights int4` of the artifact (its own codes, fp32 compute).
    ONNX int4, int8 compute: the same file with `MatMulNBits`' accuracy_level 4 (activations
        quantized to int8 per block: faster on CPUs with int8 dot products, no longer exact).
    ONNX int4 on int8 kernels: `export --weights int4-int8` of the artifact (the 4-bit codes on
        disk, widened to int8 weights when ONNX Runtime loads the file: its int8 kernels).
    ..., zstd: the same export with `--codec zstd` (model.onnx.zst, decompressed in memory when
        loaded), for the peer and for the 4-bit file: bytes on disk as an artifact's model.occ
        counts them (compressed), timed from the loaded file like the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]


EXPORTS = {  # row key -> (folder, exported from the artifact (else the fp32 run), weights, codec)
    "onnx_int8": ("int8", False, "int8", "none"),
    "onnx_int4": ("int4", True, "int4", "none"),
    "onnx_int4_int8": ("int4-int8", True, "int4-int8", "none"),
    "onnx_int8_zstd": ("int8-zstd", False, "int8", "zstd"),
    "onnx_int4_int8_zstd": ("int4-int8-zstd", True, "int4-int8", "zstd"),
}
ROWS = (("ONNX int8", "onnx_int8"), ("ONNX int4", "onnx_int4"),
        ("ONNX int4, int8 compute", "onnx_int4_acc4"),
        ("ONNX int4 on int8 kernels", "onnx_int4_int8"),
        ("ONNX int8, zstd", "onnx_int8_zstd"),
        ("ONNX int4 on int8 kernels, zstd", "onnx_int4_int8_zstd"))


def _exports(base: Path, artifact: Path, work: Path, exporter: str) -> dict[str, Path]:
    """ONNX files of the rows (exported again only when missing)."""
    from occamtune.export import export_onnx, export_run
    from occamtune.models import META_FILE, load_model, read_meta

    out = {}
    for key, (name, small, weights, codec) in EXPORTS.items():
        folder = work / name
        if not (folder / META_FILE).is_file():
            export_run(artifact if small else base, folder, weights=weights, overwrite=True,
                       exporter=exporter, codec=codec)
        out[key] = folder / read_meta(folder).format_info["onnx"]
    int8_compute = work / "int4-acc4.onnx"
    if not int8_compute.is_file():
        model = load_model(artifact, runtime=False)[0]
        export_onnx(model, int8_compute, weights="int4", accuracy_level=4, exporter=exporter)
    return {**out, "onnx_int4_acc4": int8_compute}


def export_cache(artifact: Path) -> Path:
    """Where the exports of `artifact` are cached: by its folder's name and its file's digest, as
    two searches' choices are both folders named `chosen` (keyed by the name alone, the second
    was timed on the first one's exports)."""
    import hashlib

    from occamtune.compress.artifact import ARTIFACT_FILE

    digest = hashlib.sha1((artifact / ARTIFACT_FILE).read_bytes()).hexdigest()[:12]
    return ROOT / "benchmarks" / "work" / "nbits" / f"{artifact.name}-{digest}"


def models(base: Path, artifact: Path, work: Path, exporter: str, threads: int) -> dict[str, tuple]:
    """name -> (model, bytes on disk)."""
    from occamtune.compress.artifact import artifact_bytes
    from occamtune.export import OnnxTaskModel
    from occamtune.models import WEIGHTS_FILE, load_model

    fp32 = load_model(base)[0]
    small = load_model(artifact)[0]
    files = _exports(base, artifact, work, exporter)
    pad = int(getattr(fp32.encoder.config, "pad_token_id", 0) or 0)
    out = {"fp32 (torch)": (fp32, (base / WEIGHTS_FILE).stat().st_size),
           "artifact (torch)": (small, artifact_bytes(artifact))}
    for name, key in ROWS:
        out[name] = (OnnxTaskModel(files[key], fp32.head_config, pad_id=pad, threads=threads),
                     files[key].stat().st_size)
    return out


def measure(runs: dict[str, tuple], splits: dict, metric: str, n_speed: int, rounds: int) -> list[dict]:
    """Bytes, dev and test metric and sentences/s at batch 1 and 32 of every model, timed in turn."""
    from occamtune import inference

    test = splits["test"]
    feats = sorted(test.features, key=lambda f: len(f.input_ids))
    feats = feats[:: max(1, len(feats) // n_speed)]
    rows = {name: {"name": name, "bytes": size,
                   **{f"{split}_metric": inference.evaluate(m, splits[split].dataset,
                                                            splits[split].features)[metric]
                      for split in ("dev", "test") if split in splits}}
            for name, (m, size) in runs.items()}
    for bs, some in ((1, feats[: max(1, n_speed // 4)]), (32, feats)):
        for row in rows.values():
            row[f"sents_per_s_b{bs}"] = 0.0
        for _ in range(rounds):
            for name, (m, _) in runs.items():
                rows[name][f"sents_per_s_b{bs}"] += inference.throughput(m, some, bs) / rounds
    fp32 = rows["fp32 (torch)"]
    for row in rows.values():
        row["x_smaller"] = fp32["bytes"] / row["bytes"]
        row["speedup_b1"] = row["sents_per_s_b1"] / fp32["sents_per_s_b1"]
        row["speedup_b32"] = row["sents_per_s_b32"] / fp32["sents_per_s_b32"]
    return list(rows.values())


def table(summary: dict) -> str:
    """The Markdown table of an nbits results file."""
    metric, dev = summary["metric"], "dev_metric" in summary["rows"][0]
    head = ("| model | bytes | x smaller |" + (f" dev {metric} |" if dev else "")
            + f" test {metric} | sents/s b1 | x | sents/s b32 | x |")
    lines = [head, "|---|---|---|" + ("---|" if dev else "") + "---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['name']} | {r['bytes']:,} | {r['x_smaller']:.1f} | "
                     + (f"{r['dev_metric']:.2f} | " if dev else "")
                     + f"{r['test_metric']:.2f} | {r['sents_per_s_b1']:.1f} | {r['speedup_b1']:.2f} | "
                     f"{r['sents_per_s_b32']:.1f} | {r['speedup_b32']:.2f} |")
    zst = summary.get("fp32_zstd_bytes")
    if zst:  # the reference as stored, not compressed: say what compressing it would give
        lines += ["", (f"x smaller: against model.safetensors as stored. Compressed with zstd, "
                      f"the fp32 file would be {zst:,} bytes: "
                      f"{zst / summary['rows'][0]['bytes']:.3f} of it.")]
    n = summary.get("n_speed")
    if n:  # what `measure` times: say it beside the speeds
        lines += ["", (f"Timed: about {n} test sentences spread over the lengths, in batches "
                      f"of 32 sorted by length; batch 1 on the shortest {max(1, n // 4)} of them.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    from occamtune.compress.artifact import compress_bytes
    from occamtune.compress.run import load_run_data
    from occamtune.models import WEIGHTS_FILE, load_model, read_meta
    from occamtune.tasks import get_task

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", required=True, help="the fine-tuned run folder")
    p.add_argument("--artifact", required=True, help="a 4-bit artifact compressed from --base")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    p.add_argument("--n-speed", type=int, default=512, help="test sentences timed")
    p.add_argument("--rounds", type=int, default=2, help="timing rounds of every model in turn")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="torchscript",
                   help="as benchmarks/compression.py's ONNX rows (the graph feeds the quantizers)")
    p.add_argument("--workdir", help="where the exports are cached (default: "
                   "benchmarks/work/nbits/<the artifact folder's name>-<its file's digest>)")
    p.add_argument("--name", default="nbits", help="results record: benchmarks/results/NAME.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base, artifact = Path(args.base), Path(args.artifact)
    work = Path(args.workdir) if args.workdir else export_cache(artifact)
    runs = models(base, artifact, work, args.exporter, args.threads)
    fp32, tok, meta = load_model(base)
    _, splits = load_run_data(base, tok, fp32.labels, fp32.head_config)
    metric = get_task(meta.head.task).metric
    summary = {"base": str(base.resolve()), "artifact": str(artifact.resolve()),
               "artifact_pipeline": read_meta(artifact).format_info.get("pipeline"),
               "metric": metric, "threads": args.threads, "rounds": args.rounds,
               "n_speed": args.n_speed, "exporter": args.exporter,
               "fp32_zstd_bytes": len(compress_bytes((base / WEIGHTS_FILE).read_bytes(), "zstd")),
               "rows": measure(runs, splits, metric, args.n_speed, args.rounds)}
    write_results(args.name, summary, table(summary))
    print(table(summary))


if __name__ == "__main__":
    main()
