"""An encoder checkpoint warm-started as an encoder-decoder against a decoder of the same size.

    python -m benchmarks.warm_start                  # SciTLDR-A slice -> results/warm_start.json + .md

Rothe et al. (2020) build a summarizer from an encoder-only checkpoint: BERT as the encoder and
again as the decoder (causal self-attention, new cross-attention), "BERT2BERT", or one set of
weights for both halves, "BERTShare". occamtune does this when `--task generate` gets an encoder
(`occamtune.models.seq2seq`). The sides, each an `occamtune.train` run on the same data slice,
epochs, batch size, learning rate and decoding, in its own process, one after the other:

- minilm2minilm: all-MiniLM-L6-v2 warm-started as both halves;
- minilm-share: the same with the halves tied (BERTShare);
- smollm2-<k>: the same-size decoder: SmolLM2-135M-Instruct keeping k of its 30 layers, evenly
  spaced (k chosen so that its parameters come closest to minilm2minilm's), written as a model
  folder with transformers and fine-tuned as any decoder is.

The full SmolLM2 on the same kind of slice is in `generation_scitldr.json`. Quality is what
this compares; the training throughputs are indicative (the sides run one after the other).
--limit caps the training steps and --data-root points at other data (the smoke test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.generation import DATA, FOLDERS, PAIRED_HOW, SCORES, paired, paired_gaps, prepare
from benchmarks.results_io import measured_side, write_results
from benchmarks.source_use import costs
from benchmarks.vs_hf import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
# the warm start's new cross-attention at 20x the pretrained weights' rate (train.head_lr):
# at one rate for all, the MiniLM halves learnt one sentence for every source
SETTINGS = {"epochs": 4.0, "batch_size": 8, "lr": 5e-5, "head_lr": 1e-3, "warmup": 0.1,
            "weight_decay": 0.01, "seed": 13, "max_length": 384, "max_new_tokens": 48}


def cut_decoder(out: Path, target_params: int, model: str = "smollm2") -> tuple[Path, int, list[int]]:
    """`model` keeping the k evenly spaced layers whose parameter count is closest to
    `target_params`, saved as a plain model folder with its tokenizer. Returns the folder, the
    parameter count and the kept layers."""
    import numpy as np
    import torch

    from benchmarks.generation import _causal_lm
    from occamtune.models import load_tokenizer

    lm = _causal_lm(model)
    layers = lm.model.layers
    per_layer = sum(p.numel() for p in layers[0].parameters())
    rest = sum(p.numel() for p in lm.parameters()) - per_layer * len(layers)  # tied: counted once
    k = int(min(range(1, len(layers) + 1), key=lambda n: abs(rest + n * per_layer - target_params)))
    kept = sorted({int(i) for i in np.linspace(0, len(layers) - 1, k).round()})
    lm.model.layers = torch.nn.ModuleList(layers[i] for i in kept)
    for i, layer in enumerate(lm.model.layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i
    lm.config.num_hidden_layers = len(kept)
    if getattr(lm.config, "layer_types", None):
        lm.config.layer_types = [lm.config.layer_types[i] for i in kept]
    lm.save_pretrained(out, safe_serialization=True)
    load_tokenizer(model).save_pretrained(out)
    return out, sum(p.numel() for p in lm.parameters()), kept


def run_side(model: str, folder: Path, out: Path, args: argparse.Namespace, tie: bool) -> dict:
    start = time.perf_counter()
    import occamtune
    from occamtune.config import load_config
    from occamtune.models import count_parameters

    overrides = [
        "task=generate", f"model.name={model}", f"data.path={folder}", f"output={out}",
        "overwrite=true", f"data.max_length={args.max_length}",
        f"generate.max_new_tokens={SETTINGS['max_new_tokens']}", f"train.epochs={args.epochs}",
        f"train.batch_size={SETTINGS['batch_size']}", f"train.lr={args.lr}",
        *(f"train.{k}={SETTINGS[k]}" for k in ("warmup", "weight_decay", "seed")),
        f"generate.tie_encoder_decoder={tie}",
    ]
    if args.head_lr:  # the new cross-attention's rate (models.seq2seq); a decoder has none
        overrides.append(f"train.head_lr={args.head_lr}")
    if args.limit:
        overrides.append(f"train.max_steps={args.limit}")
    run = occamtune.train(load_config(None, overrides), progress=False)
    test = run.metrics["test"]
    use = costs(occamtune.load(out), folder / "test.jsonl", 10**9, 8)  # does it read its source?
    return {**{k: test[k] for k in SCORES}, "mean_words": test.get("mean_words"),
            "distinct": test.get("distinct"), "source_gain": use["gain"],
            "parameters": count_parameters(run.model),
            "safetensors_bytes": (out / "model.safetensors").stat().st_size,
            "architecture": type(run.model.encoder).__name__,
            "train_examples": len(run.splits["train"].features),
            "train_sents_per_s": run.train_sents_per_s, "wall_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "examples": test.get("outputs", [])[:3]}


def side_outputs(work: Path, name: str) -> list[dict]:
    """A side's test outputs (prediction and references per example), as its run saved them
    (`eval_test.json`; the side's record keeps only the first three)."""
    path = work / name / "eval_test.json"
    if not path.is_file():
        sys.exit(f"no test outputs at {path}: rerun without --reuse")
    return json.loads(path.read_text())["outputs"]


def paired_sides(work: Path, names: list[str]) -> dict[str, dict]:
    """Each pair of sides on the same test examples: the first minus the second, with
    `benchmarks.generation.paired`'s 95% intervals."""
    outputs = {name: side_outputs(work, name) for name in names}
    refs = [o["references"] for o in outputs[names[0]]]
    if any([o["references"] for o in outs] != refs for outs in outputs.values()):
        sys.exit("the sides' test outputs are not of the same examples: rerun without --reuse")
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[f"{a} - {b}"] = paired(refs, [o["prediction"] for o in outputs[a]],
                                       [o["prediction"] for o in outputs[b]], names=(a, b))
    return out


def table(summary: dict) -> str:
    head = ("| side | architecture | parameters | safetensors MB | ROUGE-L | ROUGE-1 | BLEU | "
            "chrF | distinct texts | source gain | train examples/s | wall s |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary["sides"].items():
        lines.append(f"| {name} | {r['architecture']} | {r['parameters'] / 1e6:.1f}M | "
                     f"{r['safetensors_bytes'] / 1e6:.1f} | {r['rougeL']:.2f} | {r['rouge1']:.2f} | "
                     f"{r['bleu']:.2f} | {r['chrf']:.2f} | {r['distinct']:.0f}% | "
                     f"{r['source_gain']:.2f}% | {r['train_sents_per_s']:.3g} | "
                     f"{r['wall_s']:.0f} |")
    n, s = summary["examples"], summary["settings"]
    cut = summary["decoder_layers"]
    new = f" (the warm start's new weights {s['head_lr']:g})" if s.get("head_lr") else ""
    text = (f"SciTLDR-A: the first {n['train']} train, {n['dev']} dev, {n['test']} test examples; "
            f"{s['epochs']:g} epochs, batch {s['batch_size']}, lr {s['lr']:g}{new}, warm-up "
            f"{s['warmup']:g}, max length {s['max_length']}, at most {s['max_new_tokens']} new "
            f"tokens, greedy decoding. The same-size decoder keeps SmolLM2's layers {cut}. "
            "Distinct texts: the share of the test texts that differ from one another; source "
            "gain: the share of the test references' cost that their own sources save against "
            "another example's (`benchmarks/source_use.py`): 0 for a model that ignores them.")
    if summary.get("limit_steps"):
        text += f" At most {summary['limit_steps']} steps: a smoke run, not a measurement."
    gaps = summary.get("paired") or {}
    pairs = "".join(f"\n- {pair}: {paired_gaps(g)}" for pair, g in gaps.items())
    if pairs:
        text += f"\n\nThe sides' differences on the same test examples, {PAIRED_HOW}:\n{pairs}"
    return "\n".join(lines) + "\n\n" + text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data-root", default=str(DATA))
    parser.add_argument("--encoder", default="minilm", help="the encoder checkpoint to warm-start")
    parser.add_argument("--decoder", default="smollm2", help="the decoder to cut to the same size")
    parser.add_argument("--epochs", type=float, default=SETTINGS["epochs"])
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"])
    parser.add_argument("--head-lr", type=float, default=SETTINGS["head_lr"],
                        help="train.head_lr: the warm start's new cross-attention's rate")
    parser.add_argument("--max-length", type=int, default=SETTINGS["max_length"],
                        help="sub-words of a source (the encoder-decoder) or of prompt + target")
    parser.add_argument("--max-train", type=int, default=400)
    parser.add_argument("--max-dev", type=int, default=50)
    parser.add_argument("--max-test", type=int, default=100)
    parser.add_argument("--limit", type=int, default=0, help="max training steps (smoke test only)")
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "warm_start"))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tie", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir)
    folder = work / "data"
    if args.side:  # one side, in its own process
        print(json.dumps(run_side(args.model, folder, work / args.side, args, args.tie)))
        return
    source = Path(args.data_root) / FOLDERS["scitldr"]
    if not source.is_dir():
        sys.exit(f"no data at {source}: this benchmark needs ../shared/data/scitldr_a")
    examples = prepare("scitldr", source, folder, args.max_train, args.max_dev, args.max_test)
    settings = {**SETTINGS, "epochs": args.epochs, "lr": args.lr, "head_lr": args.head_lr,
                "limit": args.limit,
                "max_length": args.max_length,
                "max_train": args.max_train, "max_dev": args.max_dev, "max_test": args.max_test,
                "encoder": args.encoder, "decoder": args.decoder}

    def side(name: str, model: str, tie: bool = False) -> dict:
        cmd = [sys.executable, "-m", "benchmarks.warm_start", "--side", name, "--model", model,
               "--epochs", str(args.epochs), "--lr", str(args.lr), "--limit", str(args.limit),
               *(["--head-lr", str(args.head_lr)] if args.head_lr else []),
               "--max-length", str(args.max_length),
               "--workdir", str(work), *(["--tie"] if tie else [])]
        return measured_side(work / f"{name}.json", {**settings, "model": model, "tie": tie},
                             cmd, name, args.reuse)

    sides = {"minilm2minilm": side("minilm2minilm", args.encoder),
             "minilm-share": side("minilm-share", args.encoder, tie=True)}
    cut, params, kept = cut_decoder(work / "decoder", sides["minilm2minilm"]["parameters"],
                                    args.decoder)
    sides[f"smollm2-{len(kept)}"] = side(f"smollm2-{len(kept)}", str(cut))
    summary = {"sides": sides, "settings": settings, "examples": examples,
               "decoder_layers": kept, "decoder_parameters": params,
               "limit_steps": args.limit, "data_root": args.data_root,
               "paired": paired_sides(work, list(sides))}
    md = table(summary)
    write_results("warm_start", summary, md)
    print(md)


if __name__ == "__main__":
    main()
