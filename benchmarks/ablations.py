"""What parts of occamtune's NER recipe bring, on CoNLL-2003 with the uncased MiniLM.

    python -m benchmarks.ablations
    -> benchmarks/results/ablations.json and .md

The reference is vs_hf.py's occamtune run (benchmarks/work/ner-occamtune.json, the shipped config).
Each variant trains the same config (same seed, 3 epochs, batch 32) with one setting changed, into
benchmarks/work/ner-<variant>; a folder that already holds that run (eval_test.json, and the
whole config it would train with in its config.yaml) is reused. Reported: dev entity F1 after each epoch and test
F1 of the kept (best dev) weights. --record, --workdir, --data and --set (more overrides, after
the fixed ones) run it elsewhere: the smoke test trains a tiny model for two steps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
VARIANTS = {  # folder suffix -> (description, overrides of the shipped config)
    "noshape": ("without word-shape features", {"model.shape_features": False}),
    "headlr-off": ("head at the encoder's learning rate (head_lr off)", {"train.head_lr": None}),
    "ema0.99": ("weight EMA, decay 0.99", {"train.ema": 0.99}),
}


def _dev_curve(folder: Path) -> list[float]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [r["dev_f1"] for r in map(json.loads, lines) if "dev_f1" in r]


def _run(name: str, overrides: dict, work: Path = WORK, data: Path | None = None,
         extra: tuple[str, ...] = ()) -> Path:
    """The variant's run folder, trained unless it already holds a run of this very config (the
    shipped one with the variant's overrides: a change to the shipped config retrains)."""
    import occamtune
    from occamtune.config import dump_config, load_config

    folder = work / f"ner-{name}"
    data = data or ROOT.parent / "shared" / "data" / "conll2003"
    sets = [f"{k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in overrides.items()]
    cfg = load_config(ROOT / "configs" / "ner-conll2003.yaml",
                      [f"data.path={data}",
                       f"output={folder}", "overwrite=true", "train.epochs=3", "train.batch_size=32",
                       "train.seed=13", *sets, *extra])

    def settings(config) -> dict:  # all settings (defaults filled in) but where the run was written
        return {k: v for k, v in yaml.safe_load(dump_config(config)).items()
                if k not in ("output", "overwrite")}

    done = (folder / "eval_test.json").is_file() and (folder / "config.yaml").is_file()
    if done and settings(load_config(folder / "config.yaml", [])) == settings(cfg):
        return folder
    occamtune.train(cfg, progress=False)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--record", default=str(WORK / "ner-occamtune.json"),
                   help="vs_hf.py's record of the shipped recipe's run")
    p.add_argument("--workdir", default=str(WORK), help="where the variants' runs go")
    p.add_argument("--data", help="the CoNLL-2003 folder (default: ../shared/data/conll2003)")
    p.add_argument("--set", nargs="*", default=[], help="more config overrides, e.g. train.max_steps=2")
    args = p.parse_args()
    record = Path(args.record)
    if not record.is_file():
        sys.exit("run `python -m benchmarks.vs_hf --task ner` first (the shipped recipe's run)")
    ref = json.loads(record.read_text())
    rows = {"shipped config": {"dev_by_epoch": _dev_curve(Path(ref["model_dir"])), "dev_f1": ref["dev"],
                               "test_f1": ref["test"]}}
    for name, (description, overrides) in VARIANTS.items():
        folder = _run(name, overrides, Path(args.workdir), args.data and Path(args.data),
                      tuple(args.set))
        test = json.loads((folder / "eval_test.json").read_text())["f1"]
        curve = _dev_curve(folder)
        rows[description] = {"dev_by_epoch": curve, "dev_f1": max(curve), "test_f1": test,
                             "overrides": overrides}
    md = table(rows)
    write_results("ablations", rows, md)
    print(md)


def table(rows: dict) -> str:
    """The Markdown table of the ablations results (variant description -> record)."""
    md = ["| MiniLM-L6 (uncased), CoNLL-2003 | dev F1 after epoch 1 / 2 / 3 | dev F1 (kept) | test F1 |",
          "|---|---|---|---|"]
    for description, r in rows.items():
        curve = " / ".join(f"{v:.2f}" for v in r["dev_by_epoch"])
        md.append(f"| {description} | {curve} | {r['dev_f1']:.2f} | {r['test_f1']:.2f} |")
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
