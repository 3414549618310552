"""Generated tokens per second of a fine-tuned generator: occamtune (PyTorch) against llama.cpp.

    python -m benchmarks.generation_speed RUN                 # RUN: an `occamtune train --task generate` folder
    python -m benchmarks.generation_speed RUN --artifact SMALL --rounds 5

Sides, all on the same prompts (the first --prompts test examples, encoded by the run's own
prompt template), timed in alternation over --rounds rounds, --threads threads each:
- `torch fp32`: the run's model as occamtune loads it, decoding greedily with transformers'
  `generate` and its key/value cache (what `occamtune predict` and `serve` run), at batch 1 and
  at --batch (left-padded);
- `torch <artifact>`: each --artifact folder (an `occamtune compress` or `shrink` output), loaded
  as occamtune loads it, and with --artifact-onnx each artifact's `occamtune export` too;
- `onnx <weights>`: the run written by `occamtune export --weights <weights>` (fp32 and int8 by
  default, --onnx): its decoding step with a key/value cache in ONNX Runtime, driven by the same
  `generate` (so at batch 1 and at --batch too);
- `onnx <folder>`: each --onnx-folder, an export written before (e.g. by an earlier occamtune and
  kept aside), timed as it is: the same model before and after a change to the export;
- `llama.cpp <type>`: the run written as GGUF by `occamtune export --gguf <type>` (f32 and q4_1
  by default, --gguf), run by llama.cpp through `llama-cpp-python` (not a dependency of the
  project: `pip install -e .[llama]`, which compiles llama.cpp; without it these sides are
  left out and the record says why). Its Python API decodes one sequence at a time, so it has
  no batch row.

An encoder-decoder run (e.g. `benchmarks/warm_start.py`'s) is measured with `--gguf` given no
types: its sources right-padded, its ONNX export three graphs (`occamtune.onnx_seq2seq`).

Every side writes exactly --new-tokens tokens per prompt (the end of text is not allowed to
stop it early), so tokens/s compare equal work. Each side is also timed writing one token,
which splits its time into reading the prompt (prefill) and writing the rest (decode).
`agree` is the share of prompts whose text is that of `torch fp32`: each side also writes,
untimed, at batch 1, up to --new-tokens tokens that may end early, and its tokens up to the end
of text are compared (greedy decoding: a runtime that computes the same model writes the same
text; a quantized one may drift). The timed runs cannot be compared so: past the point where a
model would have ended, the forced tokens are whatever it ranks next after the end of text.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scitldr_a" / "test.jsonl"


# --- the sides ------------------------------------------------------------------------------------
class TorchSide:
    """A model as occamtune loads it (torch, or an ONNX export in ONNX Runtime), generating with
    transformers' `generate`."""

    def __init__(self, model: Any, prompts: list[list[int]]) -> None:
        from occamtune.models.generation import causal_lm, decoding

        self.model = model
        self.lm, self.settings = causal_lm(self.model), decoding(self.model)
        self.settings.update(num_beams=1, do_sample=False)
        self.prompts = prompts

    def run(self, new_tokens: int, batch: int, force: bool = True) -> list[list[int]]:
        """Each prompt's greedy tokens: exactly `new_tokens` (`force`), or up to its end of text."""
        import torch

        pad = self.settings["pad_token_id"]
        seq2seq = getattr(self.model, "seq2seq", False)
        out: list[list[int]] = []
        settings = {**self.settings, "max_new_tokens": new_tokens,
                    "min_new_tokens": new_tokens if force else 0}
        with torch.inference_mode():
            for start in range(0, len(self.prompts), batch):
                rows = self.prompts[start:start + batch]
                width = max(len(p) for p in rows)
                # as occamtune generates: a decoder's prompts left-padded, an encoder-decoder's
                # sources right-padded (models.generation.generate_texts)
                fill = [(0, width - len(p)) if seq2seq else (width - len(p), 0) for p in rows]
                ids = torch.tensor([[pad] * a + p + [pad] * b for p, (a, b) in zip(rows, fill)])
                mask = torch.tensor([[0] * a + [1] * len(p) + [0] * b
                                     for p, (a, b) in zip(rows, fill)])
                gen = self.lm.generate(input_ids=ids, attention_mask=mask, **settings)
                # a decoder returns its prompt too; an encoder-decoder its start token
                out.extend(row.tolist() for row in (gen[:, 1:] if seq2seq else gen[:, width:]))
        return out


class LlamaCppSide:
    """A GGUF file run by llama.cpp (llama-cpp-python), greedy, one sequence at a time."""

    def __init__(self, path: Path, prompts: list[list[int]], threads: int) -> None:
        from llama_cpp import Llama

        longest = max(len(p) for p in prompts)
        self.llm = Llama(model_path=str(path), n_ctx=max(512, longest + 256), n_threads=threads,
                         n_threads_batch=threads, n_batch=512, verbose=False)
        self.prompts = prompts

    def run(self, new_tokens: int, batch: int, force: bool = True) -> list[list[int]]:
        """Each prompt's greedy tokens, `new_tokens` of them (llama.cpp's generator does not stop
        at the end of text: `agreement` cuts there, so `force` changes nothing)."""
        out = []
        for prompt in self.prompts:
            self.llm.reset()  # no prefix kept from the last prompt: every prompt is read whole
            tokens = []
            for token in self.llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0,
                                           repeat_penalty=1.0, reset=True):
                tokens.append(int(token))
                if len(tokens) == new_tokens:
                    break
            out.append(tokens)
        return out

    def texts(self, tokenizer: Any, max_new: int, eos: int) -> list[str]:
        """Each prompt's greedy continuation up to its end of text (or `max_new` tokens),
        decoded as occamtune decodes a generation (special tokens dropped)."""
        out = []
        for prompt in self.prompts:
            self.llm.reset()
            tokens: list[int] = []
            for token in self.llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0,
                                           repeat_penalty=1.0, reset=True):
                if int(token) == eos:
                    break
                tokens.append(int(token))
                if len(tokens) == max_new:
                    break
            out.append(tokenizer.decode(tokens, skip_special_tokens=True).strip())
        return out


# --- measuring ------------------------------------------------------------------------------------
def prompts_of(predictor: Any, data: Path, n: int) -> tuple[list[list[int]], int]:
    """The first `n` prompts of `data` as the loaded run encodes them (its template), and its
    EOS id."""
    dataset = predictor.task.read(data, predictor.data)
    dataset.items = dataset.items[:n]
    features = predictor.encode(dataset)
    eos = int(predictor.model.head_config.extra["eos_id"])
    return [list(f["input_ids"][: f["prompt"]]) for f in features], eos


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def agreement(ref: list[list[int]], got: list[list[int]], eos: int) -> float:
    """The share of prompts whose tokens up to the first EOS are the reference's."""
    same = sum(_until_eos(a, eos) == _until_eos(b, eos) for a, b in zip(ref, got))
    return same / max(len(ref), 1)


def measure(sides: dict[str, Any], batches: dict[str, list[int]], new_tokens: int, rounds: int,
            n_prompts: int) -> dict[str, dict[str, Any]]:
    """Per side and batch size: the median over rounds of the seconds to write `new_tokens` and
    one token per prompt; sides and batch sizes alternate within each round."""
    times: dict[tuple[str, int, int], list[float]] = {}
    outputs: dict[str, list[list[int]]] = {}
    for name, side in sides.items():  # warm-up: first calls allocate and fill caches
        side.run(2, batches[name][0])
    for r in range(rounds):
        for name, side in sides.items():
            for batch in batches[name]:
                for n in (1, new_tokens):
                    start = time.perf_counter()
                    side.run(n, batch)
                    times.setdefault((name, batch, n), []).append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    for name, side in sides.items():  # untimed: the texts each side writes when it may stop
        outputs[name] = side.run(new_tokens, 1, force=False)
    results: dict[str, dict[str, Any]] = {}
    for (name, batch, n), secs in times.items():
        row = results.setdefault(name, {}).setdefault(str(batch), {})
        row[f"s_{'one' if n == 1 else 'all'}"] = statistics.median(secs)
        row[f"s_{'one' if n == 1 else 'all'}_runs"] = secs
    for rows in results.values():
        for row in rows.values():
            total = n_prompts * new_tokens
            row["tokens_per_s"] = total / row["s_all"]
            decode = row["s_all"] - row["s_one"]
            row["decode_tokens_per_s"] = n_prompts * (new_tokens - 1) / decode if decode > 0 else None
            row["prefill_share"] = row["s_one"] / row["s_all"]
    return {"rows": results, "outputs": outputs}


def profile(side: TorchSide, batch: int, new_tokens: int, prefix: Path) -> dict[str, Any]:
    """Where an ONNX side's time goes: one more (untimed) pass over the prompts at `batch`, with
    ONNX Runtime's profiler on each of the model's sessions (each graph loaded again so, on the
    same threads). Per graph file: the seconds its kernels ran and their shares by operator;
    `outside`: the share of the pass's wall time spent outside every kernel (transformers'
    `generate`, the cache kept on the Python side, the feeds and outputs, session overhead)."""
    import collections
    import json

    import onnxruntime as ort

    owners = {k: v for k, v in vars(side.model).items() if isinstance(v, ort.InferenceSession)}
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for key, session in owners.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = session.get_session_options().intra_op_num_threads
        opts.enable_profiling, opts.profile_file_prefix = True, f"{prefix}.{key}"
        setattr(side.model, key, ort.InferenceSession(session._model_path, opts,
                                                      providers=["CPUExecutionProvider"]))
    try:
        start = time.perf_counter()
        side.run(new_tokens, batch)
        wall = time.perf_counter() - start
        graphs = {}
        for key in owners:
            session = getattr(side.model, key)
            trace = Path(session.end_profiling())
            ops: collections.Counter[str] = collections.Counter()
            for event in json.loads(trace.read_text()):
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    ops[event["args"]["op_name"]] += event["dur"] / 1e6
            trace.unlink()
            total = sum(ops.values())
            graphs[Path(session._model_path).name] = {
                "kernel_s": total, "ops": {op: s / total for op, s in ops.most_common()}}
    finally:
        for key, session in owners.items():
            setattr(side.model, key, session)
    kernels = sum(g["kernel_s"] for g in graphs.values())
    return {"batch": batch, "wall_s": wall, "outside": max(0.0, 1 - kernels / wall),
            "graphs": graphs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", help="an occamtune generate run folder (a decoder, or an "
                               "encoder-decoder with --gguf given no types)")
    p.add_argument("--artifact", nargs="*", default=[], help="compressed artifacts of the run")
    p.add_argument("--artifact-onnx", nargs="*", default=[],
                   help="weights to export each --artifact with for ONNX Runtime too")
    p.add_argument("--gguf", nargs="*", default=["f32", "q4_1"],
                   help="GGUF types to write the run as and run in llama.cpp")
    p.add_argument("--onnx", nargs="*", default=["fp32", "int8"],
                   help="weights to export the run with for ONNX Runtime (`occamtune export`)")
    p.add_argument("--onnx-folder", nargs="*", default=[],
                   help="ONNX exports written before (e.g. by an earlier occamtune, kept aside), "
                        "timed as they are beside the new ones")
    p.add_argument("--data", default=str(DATA), help="the prompts' file (its first --prompts)")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, default=8, help="the batched size of the torch sides")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=str(ROOT / "benchmarks" / "work" / "generation_speed"))
    p.add_argument("--name", default="generation_speed", help="results/<name>.json and .md")
    p.add_argument("--profile", action="store_true",
                   help="then say where each ONNX side's time goes at --batch (`profile`)")
    args = p.parse_args()

    import torch

    import occamtune
    from occamtune.compress import artifact_bytes
    from occamtune.export import export_bytes
    from occamtune.inference import Predictor

    torch.set_num_threads(args.threads)
    run, work = Path(args.run), Path(args.workdir)
    if not Path(args.data).is_file():
        sys.exit(f"no prompts file at {args.data} (give --data)")
    predictor = Predictor(run)  # loaded once: its prompts and the fp32 side
    prompts, eos = prompts_of(predictor, Path(args.data), args.prompts)
    sides: dict[str, Any] = {"torch fp32": TorchSide(predictor.model, prompts)}
    sizes = {"torch fp32": (run / "model.safetensors").stat().st_size}
    for folder in args.artifact:
        name = f"torch {Path(folder).name}"
        sides[name] = TorchSide(Predictor(folder).model, prompts)
        sizes[name] = artifact_bytes(folder)
        for weights in args.artifact_onnx:
            out = work / f"{Path(folder).name}.onnx-{weights}"
            written = occamtune.export(folder, out, weights=weights, overwrite=True)
            sides[f"onnx {weights} {Path(folder).name}"] = TorchSide(Predictor(out).model, prompts)
            sizes[f"onnx {weights} {Path(folder).name}"] = written["bytes"]
    for weights in args.onnx:
        folder = work / f"{run.name}.onnx-{weights}"
        written = occamtune.export(run, folder, weights=weights, overwrite=True)
        sides[f"onnx {weights}"] = TorchSide(Predictor(folder).model, prompts)
        sizes[f"onnx {weights}"] = written["bytes"]  # an encoder-decoder's three graphs
    for folder in map(Path, args.onnx_folder):
        sides[f"onnx {folder.name}"] = TorchSide(Predictor(folder).model, prompts)
        sizes[f"onnx {folder.name}"] = export_bytes(folder)
    missing = None
    try:
        import llama_cpp  # noqa: F401  (only whether it is there)
    except ImportError as err:
        missing = f"llama-cpp-python is not installed ({err}); pip install -e .[llama]"
    if missing is None:
        work.mkdir(parents=True, exist_ok=True)
        for qtype in args.gguf:
            path = work / f"{run.name}.{qtype}.gguf"
            occamtune.export_gguf(run, path, qtype=qtype, overwrite=True)
            sides[f"llama.cpp {qtype}"] = LlamaCppSide(path, prompts, args.threads)
            sizes[f"llama.cpp {qtype}"] = path.stat().st_size
    batches = {name: [1] if name.startswith("llama.cpp") else [1, args.batch] for name in sides}
    measured = measure(sides, batches, args.new_tokens, args.rounds, len(prompts))
    ref = measured["outputs"]["torch fp32"]
    summary = {
        "run": str(run), "data": args.data, "prompts": len(prompts),
        "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts),
        "new_tokens": args.new_tokens, "batch": args.batch, "rounds": args.rounds,
        "threads": args.threads, "llama_cpp_missing": missing,
        "llama_cpp_version": _version("llama_cpp_python"),
        "sides": {name: {"bytes": sizes[name], "batches": measured["rows"][name],
                         "agree": agreement(ref, measured["outputs"][name], eos)}
                  for name in sides},
    }
    if args.profile:  # after the timed rounds: the profiler slows what it watches
        summary["profile"] = {name: profile(side, args.batch, args.new_tokens,
                                            work / "profile" / name.replace(" ", "_"))
                              for name, side in sides.items() if name.startswith("onnx")}
    md = table(summary)
    write_results(args.name, summary, md)
    print(md)


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def table(summary: dict) -> str:
    """The Markdown table of a generation speed record."""
    fp32 = summary["sides"]["torch fp32"]["batches"]["1"]["tokens_per_s"]
    lines = [("| side | bytes | batch | tokens/s | x torch fp32 (batch 1) | prefill share | "
              "decode tokens/s | agree with fp32 |"), "|---|---|---|---|---|---|---|---|"]
    for name, side in summary["sides"].items():
        for batch, row in side["batches"].items():
            decode = row["decode_tokens_per_s"]
            lines.append(f"| {name} | {side['bytes']:,} | {batch} | {row['tokens_per_s']:.1f} | "
                         f"{row['tokens_per_s'] / fp32:.2f}x | {row['prefill_share']:.0%} | "
                         f"{'-' if decode is None else f'{decode:.1f}'} | {side['agree']:.0%} |")
    text = (f"{summary['prompts']} prompts (mean {summary['prompt_tokens_mean']:.0f} tokens) from "
            f"`{Path(summary['data']).parent.name}/{Path(summary['data']).name}`, "
            f"{summary['new_tokens']} new tokens each, greedy, {summary['threads']} threads, "
            f"median of {summary['rounds']} rounds timed in alternation. Prefill share: the time "
            "to read the prompt and write one token over the whole time.")
    if summary.get("llama_cpp_missing"):
        text += f" No llama.cpp side: {summary['llama_cpp_missing']}."
    elif any(name.startswith("llama.cpp") for name in summary["sides"]):
        text += (f" llama.cpp through llama-cpp-python {summary['llama_cpp_version']}, one "
                 "sequence at a time (its Python API has no batched generation).")
    return "\n".join(lines) + "\n\n" + text + "\n" + profile_table(summary.get("profile", {}))


def profile_table(profiles: dict[str, Any]) -> str:
    """Where the ONNX sides' time goes (`profile`), as Markdown ('' without profiles)."""
    if not profiles:
        return ""
    batch = next(iter(profiles.values()))["batch"]
    lines = ["", (f"Where the time goes at batch {batch} (one more pass under ONNX Runtime's "
             "profiler): each graph's share of the wall time and its largest operators' shares "
             "of that graph's kernel time; `outside kernels`: `generate`, the key/value cache "
             "kept in Python, the feeds."), "",
             "| side | outside kernels | graph | share of wall | its largest operators |",
             "|---|---|---|---|---|"]
    for name, prof in profiles.items():
        for i, (graph, g) in enumerate(prof["graphs"].items()):
            ops = ", ".join(f"{op} {share:.0%}" for op, share in list(g["ops"].items())[:4])
            first = (name, f"{prof['outside']:.0%}") if i == 0 else ("", "")
            lines.append(f"| {first[0]} | {first[1]} | {graph} | "
                         f"{g['kernel_s'] / prof['wall_s']:.0%} | {ops} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
