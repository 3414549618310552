"""The `occamtune` command: parse arguments, build a config, call the public API (`occamtune.api`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from occamtune.cli.options import (
    Parser,
    add_config_options,
    add_decoding_options,
    config_overrides,
    decoding_options,
)
from occamtune.errors import ConfigError, OccamError
from occamtune.gguf_writer import QTYPES as GGUF_TYPES

DESCRIPTION = """\
Fine-tune a pretrained transformer on a labelled task, then find the smallest model that keeps
its accuracy.

  occamtune train --data ../shared/data/conll2003 --output runs/ner
  occamtune evaluate runs/ner --split test
  occamtune predict runs/ner "Angela Merkel met Emmanuel Macron in Paris ."
  occamtune compress runs/ner --pipeline "vocab(rank=32), codebook, quantize(bits=4)" --output runs/small
  occamtune shrink runs/ner --max-drop 1.0 --budget 30m --output runs/shrunk
  occamtune serve runs/small

Run `occamtune COMMAND --help` for a command's options and their defaults."""

TRAIN_EPILOG = """\
Every setting is also a `section.key=value` word, anywhere on the line (e.g. train.lr=3e-5),
and a YAML --config file takes them all; later ones win: file, then options and words.
An interrupted run resumes when the same command is run again."""


def _train(args: argparse.Namespace, extras: list[str], parser: argparse.ArgumentParser) -> int:
    from occamtune.api import train
    from occamtune.config import load_config
    from occamtune.train.run import is_main_process

    overrides = config_overrides(args, extras, parser)
    if args.overwrite:
        overrides.append("overwrite=true")
    cfg = load_config(args.config, overrides)
    run = train(cfg, progress=not args.quiet)
    if not is_main_process():
        return 0
    print(json.dumps({"output": str(run.output), "dev": run.metrics["dev"],
                      "test": _headline(run.metrics.get("test"), cfg.task),
                      "train_sents_per_s": round(run.train_sents_per_s, 2)}))
    return 0


def _headline(metrics: dict[str, Any] | None, task: str) -> dict[str, float] | None:
    from occamtune.tasks import get_task

    if metrics is None:
        return None
    keys = get_task(task).headline
    return {k: round(metrics[k], 2) for k in keys if k in metrics}


def _evaluate(args: argparse.Namespace) -> int:
    from occamtune.api import evaluate
    from occamtune.models import read_meta
    from occamtune.tasks import get_task

    metrics = evaluate(args.model, split=args.split, file=args.file,
                       decoding=decoding_options(args))
    task = get_task(read_meta(args.model).head.task)
    # the full report (per type, per class) for the person; the JSON line for scripts
    print(task.render(metrics, str(metrics["file"])), file=sys.stderr)
    if metrics.get("files"):
        print(f"written: {', '.join(metrics['files'])}", file=sys.stderr)
    if "not_written" in metrics:
        print(f"occamtune evaluate: warning: reports not written: {metrics['not_written']}",
              file=sys.stderr)
    print(json.dumps({"file": str(metrics["file"]), **(_headline(metrics, task.name) or {}),
                      "reports": metrics.get("files")}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from occamtune.api import load
    from occamtune.cli.predict_io import predict_command

    return predict_command(load(args.model, decoding_options(args)), args)


def _compress(args: argparse.Namespace) -> int:
    from occamtune.api import compress_run

    result = compress_run(args.model, args.pipeline, args.output, overwrite=args.overwrite,
                          evaluate=not args.no_eval, progress=not args.quiet,
                          decoding=decoding_options(args))
    print(json.dumps(result))
    return 0


def _export(args: argparse.Namespace) -> int:
    from occamtune.api import export

    if args.fp32 and args.weights not in (None, "fp32"):
        raise ConfigError(f"Can't give both `--fp32` and `--weights {args.weights}`: "
                          f"`--fp32` is `--weights fp32`")
    if args.gguf:
        from occamtune.api import export_gguf

        given = [f for f, v in (("--weights", args.weights), ("--fp32", args.fp32),
                                ("--exporter", args.exporter != "dynamo"),
                                ("--codec", args.codec != "none")) if v]
        if given:
            raise ConfigError(f"{', '.join(given)} set(s) the ONNX export; with --gguf the "
                              "weights are --gguf's type")
        print(json.dumps(export_gguf(args.model, args.output, qtype=args.gguf,
                                     overwrite=args.overwrite)))
        return 0
    weights = "fp32" if args.fp32 else args.weights or "int8"
    print(json.dumps(export(args.model, args.output, overwrite=args.overwrite,
                            exporter=args.exporter, weights=weights, codec=args.codec)))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from occamtune.api import serve
    from occamtune.serve.app import ServeLimits

    limits = ServeLimits(max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                         max_chars=args.max_chars, max_tokens=args.max_tokens)
    serve(args.model, host=args.host, port=args.port, limits=limits,
          decoding=decoding_options(args))
    return 0


def _data(args: argparse.Namespace, extras: list[str], parser: argparse.ArgumentParser) -> int:
    from occamtune.api import describe_data
    from occamtune.config import load_config

    overrides = [f"data.path={args.path}", f"task={args.task}",
                 *config_overrides(args, extras, parser)]
    report = describe_data(load_config(args.config, overrides))
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if report["problems"] else 0


def build_parser() -> argparse.ArgumentParser:
    from occamtune import __version__
    from occamtune.tasks import TASKS

    parser = Parser(prog="occamtune", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"occamtune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=Parser)
    tasks = {"task": sorted(TASKS)}

    p = sub.add_parser("train", help="fine-tune a pretrained model on a labelled data set",
                       description="Fine-tune a pretrained model on a labelled data set. Tasks: "
                       + "; ".join(f"{n}: {t.description}" for n, t in sorted(TASKS.items())),
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage="occamtune train [--config YAML] [options] [section.key=value ...]")
    p.add_argument("--config", metavar="YAML", help="a config file (see configs/)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(p, tasks)
    p.set_defaults(func=_train, extras=True)

    p = sub.add_parser("evaluate", help="score a model on a split of its data or on any file",
                       description="Score a model folder (trained, compressed or exported); the "
                       "full report goes to standard error and into eval_<split>.md/.json beside "
                       "the model, the headline numbers to standard output as JSON.")
    p.add_argument("model", help="a model folder")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"],
                   help="a split of the data the model was trained on (default: test)")
    p.add_argument("--file", help="a labelled file in the task's format, instead of a split")
    add_decoding_options(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="predict on texts, or annotate a file of the task's format",
                       description="Predict on texts (arguments, --file, or standard input); one "
                       "JSON line per text.")
    p.add_argument("model", help="a model folder")
    p.add_argument("texts", nargs="*", help="texts to label; '-' or none reads standard input")
    p.add_argument("--file", help="a text file, one text per line")
    p.add_argument("--conll", "--annotate", dest="conll", metavar="FILE",
                   help="a file of the task's format (e.g. CoNLL): written back with a predicted "
                        "label column")
    p.add_argument("--output", help="write here instead of standard output")
    add_decoding_options(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser("compress", help="apply a compression pipeline and write a packed artifact")
    p.add_argument("model", help="a trained run folder")
    p.add_argument("--pipeline", required=True,
                   help='e.g. "distill(layers=3), prune(sparsity=0.8), quantize(bits=4)" or a YAML '
                        "file listing {method: name, ...}")
    p.add_argument("--output", required=True, help="the artifact folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_decoding_options(p)
    p.set_defaults(func=_compress)

    p = sub.add_parser("export", help="export a model to ONNX Runtime for fast CPU inference",
                       description="Export a run or artifact folder to ONNX (int8 weights by "
                       "default); evaluate, predict and serve take the exported folder. A text "
                       "generator becomes a decoding step with a key/value cache (any decoder; "
                       "an encoder-decoder's encoder and cross-attention are two more graphs "
                       "beside it); with --gguf, a Llama-family generator becomes one GGUF file "
                       "for llama.cpp.")
    p.add_argument("model", help="a trained run folder or a compressed artifact folder")
    p.add_argument("--output", required=True, help="the folder to write")
    p.add_argument("--weights", choices=["int8", "int4", "int4-int8", "fp32", "auto", "auto-int8"],
                   default=None,
                   help="int8: ONNX Runtime's dynamic int8 (the default); int4: 4-bit "
                        "MatMulNBits, a 4-bit artifact's own codes and scales (its exact "
                        "weights), others rounded to nearest; int4-int8: the same 4-bit file, "
                        "widened to int8 weights when ONNX Runtime loads it, to run on its int8 "
                        "kernels (faster at batch > 1, no longer exact); fp32: no quantization; auto: "
                        "int4 for a model with codes of at most 4 bits, else int8; auto-int8: "
                        "the same with int4-int8 for int4")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights: `--weights fp32`")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo",
                   help="torch's current exporter (default), or the legacy TorchScript tracer: "
                        "deprecated, but exports in seconds where dynamo takes a minute (a text "
                        "generator's decoding step always takes the tracer)")
    p.add_argument("--codec", choices=["none", "zstd"], default="none",
                   help="zstd: write the graphs compressed (model.onnx.zst), smaller on disk; "
                        "occamtune decompresses them in memory when it loads the folder, other "
                        "ONNX Runtime users decompress the file first (`zstd -d`)")
    p.add_argument("--gguf", choices=GGUF_TYPES, default=None,
                   help="write a Llama-family text generator (task generate) as one GGUF file "
                        "for llama.cpp instead (--output: a path ending in .gguf), its weights "
                        "in this type (norms float32; word embeddings Q8_0 under 4 bits)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.set_defaults(func=_export)

    p = sub.add_parser("serve", help="serve a model over HTTP (POST /predict)")
    p.add_argument("model", help="a model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    limits = p.add_argument_group("request limits (413 or a per-text error above them)")
    limits.add_argument("--max-body-bytes", type=int, default=1_000_000)
    limits.add_argument("--max-texts", type=int, default=256, help="texts per request")
    limits.add_argument("--max-chars", type=int, default=20_000, help="characters per text")
    limits.add_argument("--max-tokens", type=int, default=50_000,
                        help="sub-words over all texts of a request")
    add_decoding_options(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser("data", help="show what the readers see in a data folder or file",
                       description="Splits found, format, tagging scheme, sizes, label counts and "
                       "the first problem, as occamtune train would read them.")
    p.add_argument("path", help="a data folder or one file")
    p.add_argument("--task", default="ner", choices=sorted(TASKS), help="(default: ner)")
    p.add_argument("--config", metavar="YAML", help="a config file whose data settings apply")
    p.set_defaults(func=_data, extras=True)

    from occamtune.cli.search import add_commands  # shrink, report, mdl

    add_commands(sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, by name (argparse keeps them on a private attribute)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    try:
        if getattr(args, "extras", False):
            sub = subcommands(parser)[args.command]  # for hints
            return args.func(args, extras, sub)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return args.func(args)
    except OccamError as exc:
        print(f"occamtune {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # e.g. a disk that fills up while a library writes its own files
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"occamtune {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
