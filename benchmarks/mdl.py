"""Prequential description length of CoNLL-2003 NER (and SST-2) labels under frozen encoders.

    python -m benchmarks.mdl [--sentences 3000]
    -> benchmarks/results/mdl.json and mdl.md

Two encoders of the same architecture side by side: the pretrained all-MiniLM-L6-v2 and the same
network with random weights (the control of Voita and Titov 2020). The online code length is what
`occamtune mdl` prints; the ratio to the uniform code says how much the encoder's features
compress the labels before any fine-tuning. --data and --model run it on other files and another
encoder (the smoke test: tiny ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def random_twin(folder: Path, model: str = "minilm") -> Path:
    """The model's architecture and tokenizer with freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from occamtune.models import resolve_model

    src = resolve_model(model)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(src)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sentences", type=int, default=3000, help="examples coded per data set")
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "mdl"))
    p.add_argument("--data", default=str(DATA), help="a folder holding conll2003/ and sst2/")
    p.add_argument("--model", default="minilm", help="the pretrained encoder (default: MiniLM-L6)")
    args = p.parse_args()
    data_root = Path(args.data)

    from occamtune.search import prequential_codelength

    twin = random_twin(Path(args.workdir) / "minilm-random", args.model)
    pretrained = "all-MiniLM-L6-v2 (pretrained)" if args.model == "minilm" else f"{args.model} (pretrained)"
    rows = []
    for task, data in (("ner", data_root / "conll2003"), ("classify", data_root / "sst2")):
        for name, model in ((pretrained, args.model), ("same network, random weights", str(twin))):
            r = prequential_codelength(task, str(data), model, max_sentences=args.sentences)
            r.pop("blocks")
            rows.append({"encoder": name, **r})
            print(f"{task} {name}: {r['online_bits']:,.0f} bits online, {r['uniform_bits']:,.0f} uniform, "
                  f"x{r['compression']:.2f}", flush=True)
    md = table({"rows": rows})
    write_results("mdl", {"rows": rows}, md)
    print(md)


def table(data: dict | list) -> str:
    """The Markdown table of the mdl results (a list of rows in the files written before
    provenance was recorded, {"rows": [...]} since)."""
    rows = data["rows"] if isinstance(data, dict) else data
    lines = ["| task | encoder | labels coded | online code (bits) | uniform code (bits) | compression |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['encoder']} | {r['labels_coded']:,} | {r['online_bits']:,.0f} | "
              f"{r['uniform_bits']:,.0f} | {r['compression']:.2f}x |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
