"""occamtune's generate task against the Hugging Face `Trainer` recipe for a causal LM, side by side.

    python -m benchmarks.generation                          # SciTLDR-A, the default slice
    python -m benchmarks.generation --data dialogsum         # -> results/generation_dialogsum.json + .md
    python -m benchmarks.generation --data multi30k --max-train 0 --max-dev 0 --max-test 0  # all of it

One data set per run (../shared/data): scitldr (SciTLDR-A, an abstract to a one-sentence TL;DR),
dialogsum (DialogSum, a dialogue to its summary; the folder has no training file: the script
trains on dev.jsonl less a seeded 10%, which is the dev split) or multi30k (Multi30k de-en,
parallel text files). Each split is cut to --max-train / --max-dev / --max-test examples
(defaults 200 / 50 / 100, 0: all): a slice, not the benchmark; say so when quoting it.

occamtune: `occamtune.train` with task=generate (its prompt, the loss on the target's sub-words
alone, with the output layer run on their positions only, the best model on dev, greedy decoding with the key/value cache), scored on test.
The reference: what a user writes with transformers' `Trainer`: `AutoModelForCausalLM` from the
same checkpoint (for smollm2 the packaged GGUF file, dequantized to float32), the same tokenizer,
the same prompts and target-only labels (built with occamtune's own `encode_pairs`, so that both
sides train and decode on identical tokens; only the labels are given unshifted, as a
transformers causal LM shifts them itself), padding to the longest in the batch, the linear
schedule, no evaluation during training, then greedy `model.generate` on the left-padded test
prompts. Both sides are scored by the same function (`text_scores`: ROUGE with rouge-score,
BLEU/chrF with sacrebleu, the best over an example's references).

Same model, epochs, batch size, learning rate, warm-up, weight decay, seed, maximum length and
maximum new tokens on both sides. Each side runs in its own subprocess (its peak memory is its
own); occamtune's wall time includes its evaluation on dev after each epoch (it keeps the best
epoch's model), the reference has none; occamtune batches similar lengths together
(train.group_by_length), the reference draws batches at random as `Trainer` does. --data-root and --model point at other files (the smoke test: tiny ones); --limit caps the
training steps (smoke test only); --reuse keeps a side measured earlier with the same settings.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.results_io import measured_side, write_results
from benchmarks.vs_hf import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FOLDERS = {"scitldr": "scitldr_a", "dialogsum": "dialogsum", "multi30k": "multi30k"}
TITLES = {"scitldr": "SciTLDR-A", "dialogsum": "DialogSum", "multi30k": "Multi30k de-en"}
MAX_LENGTH = {"scitldr": 384, "dialogsum": 384, "multi30k": 128}
MAX_NEW_TOKENS = {"scitldr": 48, "dialogsum": 48, "multi30k": 64}
# Multi30k's files, by split: the names occamtune's folder reader knows
PARALLEL = {"train": "train", "dev": "val", "test": "test_2016_flickr"}
COMMON = {"epochs": 1.0, "batch_size": 8, "lr": 5e-5, "warmup": 0.1, "weight_decay": 0.01,
          "seed": 13, "eval_batch_size": 8}
SCORES = ("rougeL", "rouge1", "rouge2", "bleu", "chrf")


# --- data -----------------------------------------------------------------------------------------
def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")


def prepare(data: str, source: Path, folder: Path, max_train: int, max_dev: int,
            max_test: int) -> dict[str, int]:
    """train / dev / test files of `data` in `folder`, each cut to its first `max_*` examples
    (0: all). DialogSum: train is dev.jsonl less a seeded 10%, which is dev. Returns the number
    of examples of each split."""
    folder.mkdir(parents=True, exist_ok=True)
    caps = {"train": max_train or None, "dev": max_dev or None, "test": max_test or None}
    if data == "multi30k":
        for split, name in PARALLEL.items():
            de, en = _lines(source / f"{name}.de"), _lines(source / f"{name}.en")
            if len(de) != len(en):
                sys.exit(f"{source / name}.de has {len(de)} lines, .en {len(en)}")
            _write_lines(folder / f"{name}.de", de[: caps[split]])
            _write_lines(folder / f"{name}.en", en[: caps[split]])
        return {split: len(_lines(folder / f"{name}.de")) for split, name in PARALLEL.items()}
    if data == "dialogsum":
        rows = _lines(source / "dev.jsonl")
        order = list(range(len(rows)))
        random.Random(COMMON["seed"]).shuffle(order)
        held = set(order[: max(1, len(rows) // 10)])
        splits = {"train": [r for i, r in enumerate(rows) if i not in held],
                  "dev": [r for i, r in enumerate(rows) if i in held],
                  "test": _lines(source / "test.jsonl")}
    else:
        splits = {name: _lines(source / f"{name}.jsonl") for name in ("train", "dev", "test")}
    for name, rows in splits.items():
        _write_lines(folder / f"{name}.jsonl", rows[: caps[name]])
    return {name: len(rows[: caps[name]]) for name, rows in splits.items()}


def _overrides(data: str, folder: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The occamtune run's settings (the reference reads its prompt settings from the same)."""
    overrides = [
        "task=generate", f"model.name={args.model}", f"data.path={folder}", f"output={out}",
        "overwrite=true", f"data.max_length={args.max_length}",
        f"generate.max_new_tokens={args.max_new_tokens}", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
        *(f"train.{k}={COMMON[k]}" for k in ("warmup", "weight_decay", "seed", "eval_batch_size")),
    ]
    if data == "multi30k":
        overrides += ["data.input_field=de", "data.label_field=en"]
    if args.limit:
        overrides.append(f"train.max_steps={args.limit}")
    return overrides


# --- the two sides --------------------------------------------------------------------------------
def run_occamtune(data: str, folder: Path, out: Path, args: argparse.Namespace) -> dict:
    start = time.perf_counter()  # each side's wall time counts the imports of its libraries
    import occamtune
    from occamtune.config import load_config

    run = occamtune.train(load_config(None, _overrides(data, folder, out, args)), progress=False)
    test = run.metrics["test"]
    return {**{k: test[k] for k in SCORES}, "mean_words": test.get("mean_words"),
            "distinct": test.get("distinct"),
            "train_examples": len(run.splits["train"].features),
            "train_sents_per_s": run.train_sents_per_s, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "model_dir": str(out),
            "examples": test.get("outputs", [])[:5],
            "predictions": [o["prediction"] for o in test.get("outputs", [])]}


def _split_file(data: str, folder: Path, split: str) -> Path:
    return (folder / f"{PARALLEL[split]}.de" if data == "multi30k"
            else folder / f"{split}.jsonl")


def _causal_lm(model: str) -> Any:
    """`AutoModelForCausalLM` from a model folder, or from a GGUF file as transformers reads one
    (`gguf_file=`), in float32 as occamtune loads it."""
    import torch
    from transformers import AutoModelForCausalLM

    from occamtune.models import resolve_model
    from occamtune.models.gguf import gguf_location

    path = resolve_model(model)
    gguf = gguf_location(path)
    if not gguf:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    lm = AutoModelForCausalLM.from_pretrained(gguf[0], gguf_file=gguf[1], dtype=torch.float32)
    packed = sorted({str(p.dtype) for p in lm.parameters() if not p.dtype.is_floating_point})
    if packed:
        sys.exit(f"{gguf[1]} loaded with packed {packed} weights (GGUF kernels installed?); the "
                 "recipe fine-tunes the de-quantized float32 model")
    # The weights are plain float32 now, but the GGUF quantizer's marker stays on the model and
    # `Trainer` refuses "purely quantized models": drop it (../shared/data/README.md says so)
    lm.hf_quantizer = None
    lm.is_quantized = False
    for name in ("quantization_method", "_weight_conversions"):
        if hasattr(lm, name):
            delattr(lm, name)
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    return lm


def _collate(pad: int):
    """Right-padding to the longest row: input ids with `pad`, labels with -100, mask 0."""
    import torch

    from occamtune.data.encode import IGNORE

    def collate(rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        return {
            "input_ids": torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"]))
                                       for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r["input_ids"])
                                            + [0] * (width - len(r["input_ids"])) for r in rows]),
            "labels": torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"]))
                                    for r in rows]),
        }

    return collate


def hf_generate(model: Any, tok: Any, prompts: list[list[int]], max_new_tokens: int, eos: int,
                pad: int, batch_size: int = 8) -> list[str]:
    """Greedy `model.generate` on left-padded batches of the prompts, in order; the new
    tokens decoded without special tokens."""
    import torch

    out: list[str] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start:start + batch_size]
            width = max(len(p) for p in batch)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, num_beams=1, eos_token_id=eos, pad_token_id=pad)
            out += [tok.decode(row, skip_special_tokens=True).strip() for row in gen[:, width:]]
    return out


def run_hf(data: str, folder: Path, out: Path, args: argparse.Namespace) -> dict:
    """The `Trainer` recipe for a causal LM on occamtune's prompts and targets."""
    start = time.perf_counter()
    from transformers import Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from occamtune.config import ModelConfig, load_config
    from occamtune.data.encode import IGNORE
    from occamtune.models import add_task_tokens, load_tokenizer
    from occamtune.tasks import get_task
    from occamtune.tasks.generate import encode_pairs
    from occamtune.tasks.text_metrics import text_scores

    hf_logging.set_verbosity_error()
    cfg = load_config(None, _overrides(data, folder, out, args))
    tok = load_tokenizer(args.model, "generate")
    add_task_tokens(tok, "generate")  # none for generate; as occamtune does
    task = get_task("generate")
    extra = task.head_options(ModelConfig(), tok, cfg)["extra"]  # occamtune's prompt settings
    train = task.read(_split_file(data, folder, "train"), cfg.data)  # occamtune's reader
    test = task.read(_split_file(data, folder, "test"), cfg.data)
    # occamtune's labels are the next sub-words; a transformers causal LM shifts them itself:
    # label t is input t on the target (and its EOS), -100 on the prompt
    rows = [{"input_ids": f["input_ids"],
             "labels": [IGNORE] * f["prompt"] + f["input_ids"][f["prompt"]:]}
            for f in encode_pairs(train, tok, extra, cfg.data.max_length)]
    prompts = [f["input_ids"][: f["prompt"]]
               for f in encode_pairs(test, tok, extra, cfg.data.max_length)]

    model = _causal_lm(args.model)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id  # as occamtune sets it
    pad = int(model.config.pad_token_id or 0)
    training = TrainingArguments(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=COMMON["warmup"],  # a float in [0, 1): a ratio
        weight_decay=COMMON["weight_decay"], seed=COMMON["seed"], lr_scheduler_type="linear",
        eval_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
        max_steps=args.limit or -1, dataloader_num_workers=0, logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training, train_dataset=rows, data_collator=_collate(pad))
    res = trainer.train()
    texts = hf_generate(model, tok, prompts, args.max_new_tokens, int(extra["eos_id"]), pad)
    scores = text_scores([ex.references for ex in test.items], texts)  # as occamtune scores
    return {**{k: scores[k] for k in SCORES}, "mean_words": scores["mean_words"],
            "distinct": scores.get("distinct"),
            "train_examples": len(rows),
            "train_sents_per_s": res.metrics["train_samples_per_second"],
            "train_runtime_s": res.metrics["train_runtime"], "wall_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "predictions": texts,
            "examples": [{"prediction": p, "references": ex.references}
                         for p, ex in zip(texts[:5], test.items)]}


# --- the comparison -------------------------------------------------------------------------------
def paired(references: list[list[str]], ours: list[str], theirs: list[str],
           samples: int = 1000, seed: int = 0,
           names: tuple[str, str] = ("occamtune", "hf")) -> dict[str, Any]:
    """occamtune's score minus the reference recipe's on the same test examples (`names`: the
    two sides, as the BLEU and chrF intervals are keyed), with a 95% paired bootstrap interval:
    whether a gap is larger than the test slice's own noise.

    BLEU and chrF: sacrebleu's own paired bootstrap test (`PairedTest`, the recipe as its
    baseline), which resamples the corpus statistics. ROUGE-L: rouge-score gives per-example
    scores (stemmed, the best reference) but no paired test, so the examples' differences are
    resampled here, in the same way."""
    import numpy as np
    import sacrebleu
    from rouge_score import rouge_scorer
    from sacrebleu.significance import PairedTest

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    diff = np.array([scorer.score_multi(refs, a)["rougeL"].fmeasure
                     - scorer.score_multi(refs, b)["rougeL"].fmeasure
                     for refs, a, b in zip(references, ours, theirs)]) * 100
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(len(diff), size=(samples, len(diff)))].mean(1)
    out = {"rougeL": {"diff": float(diff.mean()),
                      "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}}
    width = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(width)]
    metrics = {"bleu": sacrebleu.BLEU(), "chrf": sacrebleu.CHRF()}
    test = PairedTest([(names[1], theirs), (names[0], ours)], metrics, streams, test_type="bs",
                      n_samples=samples)
    _, results = test()
    # its results are keyed by the metrics' own names ("BLEU", "chrF2"), in the given order
    for name, key in zip(metrics, [k for k in results if k != "System"]):
        base, mine = results[key]
        out[name] = {"diff": float(mine.score - base.score), "p_value": float(mine.p_value),
                     f"ci95_{names[0]}": [float(mine.mean - mine.ci), float(mine.mean + mine.ci)],
                     f"ci95_{names[1]}": [float(base.mean - base.ci), float(base.mean + base.ci)]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", choices=sorted(FOLDERS), default="scitldr")
    parser.add_argument("--data-root", default=str(DATA),
                        help="a folder holding scitldr_a/, dialogsum/, multi30k/")
    parser.add_argument("--model", default="smollm2",
                        help="model for both sides: smollm2 (the packaged GGUF file) or a folder")
    parser.add_argument("--epochs", type=float, default=COMMON["epochs"])
    parser.add_argument("--batch-size", type=int, default=COMMON["batch_size"])
    parser.add_argument("--lr", type=float, default=COMMON["lr"])
    parser.add_argument("--max-length", type=int, help="sub-words of prompt + target "
                        "(default: 384 for the summaries, 128 for multi30k)")
    parser.add_argument("--max-new-tokens", type=int, help="longest generated (and trained) "
                        "target (default: 48 for the summaries, 64 for multi30k)")
    parser.add_argument("--max-train", type=int, default=200, help="first N training examples (0: all)")
    parser.add_argument("--max-dev", type=int, default=50, help="first N dev examples (0: all)")
    parser.add_argument("--max-test", type=int, default=100, help="first N test examples (0: all)")
    parser.add_argument("--limit", type=int, default=0, help="max training steps (smoke test only)")
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "generation"))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse sides measured earlier with the same settings (workdir)")
    parser.add_argument("--side", choices=["occamtune", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.max_length = args.max_length or MAX_LENGTH[args.data]
    args.max_new_tokens = args.max_new_tokens or MAX_NEW_TOKENS[args.data]
    work = Path(args.workdir)
    folder = work / f"{args.data}-data"
    if args.side:  # one side, in its own process
        fn = run_occamtune if args.side == "occamtune" else run_hf
        print(json.dumps(fn(args.data, folder, work / f"{args.data}-{args.side}", args)))
        return
    source = Path(args.data_root) / FOLDERS[args.data]
    if not source.is_dir():
        sys.exit(f"no data at {source}: this benchmark needs ../shared/data/{FOLDERS[args.data]} "
                 "(or --data-root FOLDER holding it)")
    examples = prepare(args.data, source, folder, args.max_train, args.max_dev, args.max_test)
    sides = {name: _side(name, args) for name in ("hf", "occamtune")}
    summary = {"data": args.data, "model": args.model, "sides": sides,
               "settings": {**COMMON, "epochs": args.epochs, "batch_size": args.batch_size,
                            "lr": args.lr, "max_length": args.max_length,
                            "max_new_tokens": args.max_new_tokens, "decoding": "greedy"},
               "limit_steps": args.limit, "max_train": args.max_train, "max_dev": args.max_dev,
               "max_test": args.max_test, "examples": examples, "data_root": args.data_root,
               "slice": bool(args.limit or args.max_train or args.max_dev or args.max_test)}
    preds = [sides[name].get("predictions") for name in ("occamtune", "hf")]
    if all(preds) and len(preds[0]) == len(preds[1]):  # sides measured before they kept them: none
        from occamtune.config import load_config
        from occamtune.tasks import get_task

        data = load_config(None, _overrides(args.data, folder, folder, args)).data
        test = get_task("generate").read(_split_file(args.data, folder, "test"), data)
        summary["paired"] = paired([ex.references for ex in test.items], *preds)
    md = table(summary)
    write_results(f"generation_{args.data}", summary, md)
    print(md)


def _settings(args: argparse.Namespace) -> dict:
    """What a measured side depends on (a cached side is reused only for the same)."""
    return {k: getattr(args, k) for k in ("data", "data_root", "model", "epochs", "batch_size", "lr",
                                          "max_length", "max_new_tokens", "limit", "max_train",
                                          "max_dev", "max_test")}


def _side(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.generation", "--data", args.data, "--side", name,
           "--model", args.model, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--lr", str(args.lr), "--max-length", str(args.max_length),
           "--max-new-tokens", str(args.max_new_tokens), "--limit", str(args.limit),
           "--workdir", args.workdir]
    return measured_side(Path(args.workdir) / f"{args.data}-{name}.json", _settings(args), cmd,
                         f"{args.data} {name}", args.reuse)


def _slice_text(summary: dict) -> str:
    n = summary["examples"]
    cut = [f"{'the first ' if summary[f'max_{s}'] else 'all '}{n[s]} {s}"
           for s in ("train", "dev", "test")]
    steps = f", at most {summary['limit_steps']} steps" if summary.get("limit_steps") else ""
    return (f"{TITLES[summary['data']]}, model {summary['model']}: {', '.join(cut)} examples, "
            f"{summary['settings']['epochs']:g} epoch(s){steps}, batch "
            f"{summary['settings']['batch_size']}, lr {summary['settings']['lr']:g}, "
            f"max length {summary['settings']['max_length']}, at most "
            f"{summary['settings']['max_new_tokens']} new tokens, greedy decoding.")


def table(summary: dict) -> str:
    """The Markdown table of a generation results record."""
    lines = ["| side | ROUGE-L | ROUGE-1 | BLEU | chrF | train examples/s | peak RSS MB | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, label in (("occamtune", "occamtune"), ("hf", "HF Trainer recipe")):
        r = summary["sides"][name]
        lines.append(f"| {label} | {r['rougeL']:.2f} | {r['rouge1']:.2f} | {r['bleu']:.2f} | "
                     f"{r['chrf']:.2f} | {r['train_sents_per_s']:.3g} | {r['peak_rss_mb']:.0f} | "
                     f"{r['wall_s']:.0f} |")
    note = ("A slice (--max-train / --max-dev / --max-test / --limit): not the benchmark.\n"
            if summary.get("slice") else "")
    return "\n".join(lines) + "\n\n" + _slice_text(summary) + "\n" + _paired_text(summary) + note


def _paired_text(summary: dict) -> str:
    """The gaps with their 95% paired bootstrap intervals (records that kept every prediction)."""
    gaps = summary.get("paired")
    if not gaps:
        return ""
    return ("occamtune minus the recipe on the same test examples, " + PAIRED_HOW + ": "
            + paired_gaps(gaps) + ".\n")


PAIRED_HOW = ("paired bootstrap over them (1,000 resamples; ROUGE-L with its 95% interval, BLEU "
              "and chrF by sacrebleu's paired test)")


def rouge_gap(gaps: dict) -> str:
    """`paired`'s ROUGE-L gap with its 95% interval: "+1.34 [-0.00, +2.70]"."""
    rouge = gaps["rougeL"]
    return f"{rouge['diff']:+.2f} [{rouge['ci95'][0]:+.2f}, {rouge['ci95'][1]:+.2f}]"


def paired_gaps(gaps: dict) -> str:
    """One line of `paired`'s gaps."""
    parts = [f"ROUGE-L {rouge_gap(gaps)}"]
    parts += [f"{label} {gaps[k]['diff']:+.2f} (p = {gaps[k]['p_value']:.3f})"
              for k, label in (("bleu", "BLEU"), ("chrf", "chrF"))]
    return "; ".join(parts)


if __name__ == "__main__":
    main()
