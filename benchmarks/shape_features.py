"""What word-shape features bring to the uncased MiniLM on CoNLL-2003 NER.

    python -m benchmarks.shape_features
    -> benchmarks/results/shape_features.json and .md

The run with shape features is vs_hf.py's occamtune run (benchmarks/work/ner-occamtune.json, the
shipped config); this script trains the same config with `model.shape_features=false` (same seed,
epochs and batch size) and compares test entity F1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    import occamtune
    from occamtune.config import load_config

    record = WORK / "ner-occamtune.json"
    if not record.is_file():
        sys.exit("run `python -m benchmarks.vs_hf --task ner` first (the run with shape features)")
    with_shapes = json.loads(record.read_text())
    cfg = load_config(ROOT / "configs" / "ner-conll2003.yaml",
                      [f"data.path={ROOT.parent / 'shared' / 'data' / 'conll2003'}",
                       f"output={WORK / 'ner-noshape'}", "overwrite=true", "model.shape_features=false",
                       "train.epochs=3", "train.batch_size=32", "train.seed=13"])
    run = occamtune.train(cfg, progress=False)
    out = {"with_shapes_test_f1": with_shapes["test"], "with_shapes_dev_f1": with_shapes["dev"],
           "without_shapes_test_f1": run.metrics["test"]["f1"], "without_shapes_dev_f1": run.metrics["dev"]}
    out["test_f1_gain"] = out["with_shapes_test_f1"] - out["without_shapes_test_f1"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shape_features.json").write_text(json.dumps(out, indent=2))
    md = "\n".join(["| MiniLM-L6 (uncased), CoNLL-2003 | dev F1 | test F1 |", "|---|---|---|",
                    f"| with word-shape features (default) | {out['with_shapes_dev_f1']:.2f} | {out['with_shapes_test_f1']:.2f} |",
                    f"| without | {out['without_shapes_dev_f1']:.2f} | {out['without_shapes_test_f1']:.2f} |"])
    (RESULTS / "shape_features.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
