"""The `occamtune` command: parse arguments, build a config, call the public API (`occamtune.api`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from occamtune.errors import OccamError

TRAIN_FLAGS = {  # flag -> config key
    "task": "task", "data": "data.path", "model": "model.name", "output": "output",
    "epochs": "train.epochs", "lr": "train.lr", "batch_size": "train.batch_size",
    "seed": "train.seed", "max_length": "data.max_length",
    "train_file": "data.train", "dev_file": "data.dev", "test_file": "data.test",
}


def _train(args: argparse.Namespace) -> int:
    from occamtune.api import train
    from occamtune.config import load_config
    from occamtune.train.run import is_main_process

    overrides = [f"{key}={getattr(args, flag)}" for flag, key in TRAIN_FLAGS.items()
                 if getattr(args, flag) is not None]
    if args.overwrite:
        overrides.append("overwrite=true")
    cfg = load_config(args.config, overrides + list(args.overrides))
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

    metrics = evaluate(args.model, split=args.split, file=args.file)
    headline = _headline(metrics, read_meta(args.model).head.task) or {}
    print(json.dumps({"file": str(metrics["file"]), **headline,
                      "reports": metrics.get("files")}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from occamtune.api import load
    from occamtune.cli.predict_io import predict_command

    return predict_command(load(args.model), args)


def _compress(args: argparse.Namespace) -> int:
    from occamtune.api import compress_run

    result = compress_run(args.model, args.pipeline, args.output, overwrite=args.overwrite,
                          evaluate=not args.no_eval, progress=not args.quiet)
    print(json.dumps(result))
    return 0


def _export(args: argparse.Namespace) -> int:
    from occamtune.api import export

    print(json.dumps(export(args.model, args.output, int8=not args.fp32, overwrite=args.overwrite)))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from occamtune.api import serve

    serve(args.model, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from occamtune.tasks import TASKS

    parser = argparse.ArgumentParser(prog="occamtune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a pretrained model on a labelled data set")
    p.add_argument("--config", help="YAML config file (see configs/)")
    p.add_argument("--task", choices=sorted(TASKS),
                   help="; ".join(f"{n}: {t.description}" for n, t in sorted(TASKS.items())))
    p.add_argument("--data", help="folder with train/dev/test files (or one training file)")
    p.add_argument("--train", dest="train_file", metavar="FILE",
                   help="training file (with --data: instead of the folder's own)")
    p.add_argument("--dev", dest="dev_file", metavar="FILE", help="dev file (early stopping)")
    p.add_argument("--test", dest="test_file", metavar="FILE", help="test file (scored at the end)")
    p.add_argument("--model", help="'minilm' (default), a model folder, or an occamtune run to continue")
    p.add_argument("--output", help="run folder to write")
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--max-length", dest="max_length", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.lr=1e-4")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score a model on a split of its data or on any file")
    p.add_argument("model", help="model folder (trained or compressed)")
    p.add_argument("--split", default="test", choices=["train", "dev", "test"])
    p.add_argument("--file", help="a labelled file to score instead of a split")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="predict on text (arguments, --file, or stdin) or annotate a "
                                       "file of the task's format")
    p.add_argument("model")
    p.add_argument("texts", nargs="*", help="texts to label; '-' or none reads stdin")
    p.add_argument("--file", help="a text file, one text per line")
    p.add_argument("--conll", "--annotate", dest="conll",
                   help="a file of the task's format (e.g. CoNLL): written back with a predicted "
                        "label column")
    p.add_argument("--output", help="write here instead of stdout")
    p.set_defaults(func=_predict)

    p = sub.add_parser("compress", help="apply a compression pipeline and write a packed artifact")
    p.add_argument("model", help="a trained run folder")
    p.add_argument("--pipeline", required=True,
                   help='e.g. "distill(layers=3), prune(sparsity=0.8), quantize(bits=4)" or a YAML file')
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_compress)

    p = sub.add_parser("export", help="export a model to ONNX Runtime (int8 by default) for fast CPU "
                                      "inference; evaluate, predict and serve take the folder")
    p.add_argument("model", help="a trained run folder or a compressed artifact folder")
    p.add_argument("--output", required=True)
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (no int8 quantization)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_export)

    p = sub.add_parser("serve", help="serve a model over HTTP (POST /predict)")
    p.add_argument("model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)

    from occamtune.cli.search import add_commands  # shrink, report, mdl

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OccamError as exc:
        print(f"occamtune {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
