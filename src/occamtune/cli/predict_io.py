"""Input and output of `occamtune predict`: texts from arguments, a file or stdin; JSONL out; or a
file of the task's format in and the same with a predicted label column out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from occamtune.errors import DataError


def read_texts(args: argparse.Namespace) -> list[str]:
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise DataError(path, "file does not exist")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise DataError(path, "not UTF-8 text; convert it with iconv", line=line) from exc
        return [ln for ln in lines if ln.strip()]
    if args.texts and args.texts != ["-"]:
        return list(args.texts)
    return [ln for ln in sys.stdin.read().splitlines() if ln.strip()]


def predict_command(predictor: Any, args: argparse.Namespace) -> int:
    from occamtune.io import atomic_write_text

    if args.conll:
        text = predictor.annotate_file(args.conll)
    else:
        results = predictor.predict(read_texts(args))
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
