"""Where the bytes of a packed artifact go, and how close its quantized codes are to their entropy.

    python -m benchmarks.artifact_bits [FOLDER] [--name NAME]
    -> benchmarks/results/artifact_bits.json and .md (or NAME.json and .md)

FOLDER defaults to the smallest artifact within 1 F1 of benchmarks/compression.py (vocab r64 +
codebook + 4-bit GPTQ). Each tensor part (codes, scales, values...) is compressed alone with zstd
level 19, so the groups' sizes add up to about the artifact's; the order-0 entropy of each
quantized matrix's codes is the least any coder that codes one code at a time could reach.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = (ROOT / "benchmarks" / "work" / "compression" / "compressed"
           / "pipeline_vocab_r64_+_codebook_+_4-bit_GPTQ")


def group_of(name: str) -> str:
    if "embeddings" in name:
        return "embeddings"
    if ".attention." in name:
        return "attention"
    if "intermediate" in name or ".output." in name:
        return "feed-forward"
    return "other (head, pooler)"


def main() -> None:
    import zstandard

    from occamtune.compress.artifact import ARTIFACT_FILE, entry_parts, read_occ
    from occamtune.compress.packing import decode_quant

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("folder", nargs="?", default=str(DEFAULT))
    p.add_argument("--name", default="artifact_bits", help="results record: benchmarks/results/NAME.json")
    args = p.parse_args()
    folder = Path(args.folder)
    manifest, payload = read_occ(folder / ARTIFACT_FILE)
    zstd = zstandard.ZstdCompressor(level=19)
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for entry in manifest["tensors"]:
        group = groups[group_of(entry["name"])]
        parts = entry_parts(entry, payload) if "parts" in entry else {}
        for part, data in parts.items():
            group[f"{part}_zstd_bytes"] += len(zstd.compress(data))
        if entry["enc"] == "quant":
            codes = decode_quant(entry, parts)[0].numpy().ravel().astype(np.int16)
            freq = np.bincount(codes - codes.min()) / codes.size
            freq = freq[freq > 0]
            group["codes"] += codes.size
            group["codes_entropy_bytes"] += float(-(freq * np.log2(freq)).sum()) * codes.size / 8
    out = {"folder": str(folder), "artifact_bytes": (folder / ARTIFACT_FILE).stat().st_size,
           "groups": {k: dict(v) for k, v in groups.items()}}
    md = table(out)
    write_results(args.name, out, md)
    print(md)


def table(out: dict) -> str:
    """The Markdown table of the artifact_bits results."""
    md = [f"`{Path(out['folder']).name}`: {out['artifact_bytes']:,} bytes", "",
          "| group | codes | codes, zstd bytes | codes, order-0 entropy bytes | bits per code | other parts, zstd bytes |",
          "|---|---|---|---|---|---|"]
    for name, g in out["groups"].items():
        other = sum(v for k, v in g.items() if k.endswith("_zstd_bytes") and k != "codes_zstd_bytes")
        n = g.get("codes", 0)
        bits = f"{8 * g['codes_entropy_bytes'] / n:.2f}" if n else ""
        md.append(f"| {name} | {int(n):,} | {int(g.get('codes_zstd_bytes', 0)):,} | "
                  f"{int(g.get('codes_entropy_bytes', 0)):,} | {bits} | {int(other):,} |")
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
