"""Prequential description length of CoNLL-2003 NER (and SST-2) labels under frozen encoders.

    python -m benchmarks.mdl [--sentences 3000]
    -> benchmarks/results/mdl.json and mdl.md

Two encoders of the same architecture side by side: the pretrained all-MiniLM-L6-v2 and the same
network with random weights (the control of Voita and Titov 2020). The online code length is what
`occamtune mdl` prints; the ratio to the uniform code says how much the encoder's features
compress the labels before any fine-tuning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def random_twin(folder: Path) -> Path:
    """MiniLM's architecture and tokenizer with freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from occamtune.models import resolve_model

    src = resolve_model("minilm")
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sentences", type=int, default=3000, help="examples coded per data set")
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "mdl"))
    args = p.parse_args()

    from occamtune.search import prequential_codelength

    twin = random_twin(Path(args.workdir) / "minilm-random")
    rows = []
    for task, data in (("ner", DATA / "conll2003"), ("classify", DATA / "sst2")):
        for name, model in (("all-MiniLM-L6-v2 (pretrained)", "minilm"), ("same network, random weights", str(twin))):
            r = prequential_codelength(task, str(data), model, max_sentences=args.sentences)
            r.pop("blocks")
            rows.append({"encoder": name, **r})
            print(f"{task} {name}: {r['online_bits']:,.0f} bits online, {r['uniform_bits']:,.0f} uniform, "
                  f"x{r['compression']:.2f}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mdl.json").write_text(json.dumps(rows, indent=2))
    lines = ["| task | encoder | labels coded | online code (bits) | uniform code (bits) | compression |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['encoder']} | {r['labels_coded']:,} | {r['online_bits']:,.0f} | "
              f"{r['uniform_bits']:,.0f} | {r['compression']:.2f}x |" for r in rows]
    (RESULTS / "mdl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
