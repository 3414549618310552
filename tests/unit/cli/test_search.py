"""The shrink / report / mdl sub-commands."""

from __future__ import annotations

import argparse
import json

import pytest

from occamtune.cli.search import add_commands, parse_duration
from occamtune.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occamtune")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_parse_duration() -> None:
    assert parse_duration("90m") == 5400 and parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400 and parse_duration("300") == 300
    with pytest.raises(ConfigError, match="--budget"):
        parse_duration("soon")


def test_flags_parse() -> None:
    args = _parser().parse_args(["shrink", "runs/ner", "--output", "o", "--budget", "90m",
                                 "--trials", "4", "--storage", "sqlite:///x.db", "--study", "s",
                                 "--space", "bits=4,3"])
    assert args.trials == 4 and args.study == "s" and args.space == ["bits=4,3"]
    args = _parser().parse_args(["mdl", "--task", "ner", "--data", "d", "--max-sentences", "10"])
    assert args.max_sentences == 10 and args.model == "minilm"


def test_mdl_command_prints_json(conll_tiny, tiny_model_dir, capsys) -> None:
    args = _parser().parse_args(["mdl", "--data", str(conll_tiny), "--model", str(tiny_model_dir)])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["online_bits"] > 0 and out["compression"] > 0


def test_a_search_that_chose_nothing_says_why_and_what_to_change() -> None:
    import re

    from occamtune.cli.search import no_choice_hint
    from occamtune.search.space import parse_space

    summary = {"trials": {"complete": 0, "pruned": 1, "failed": 0, "waiting": 1},
               "search_wall_s": 1413.6}
    hint = no_choice_hint(summary, 1.0)
    assert "within 1 of the base" in hint and "1 pruned in 24 min" in hint
    assert "--budget" in hint and "--max-drop" in hint
    space = re.search(r"--space ((?:\w+=[\d.]+ ?)+)", hint).group(1).split()
    parsed = parse_space(space)  # the suggested space is one the command accepts
    assert parsed.distill_layers == (0,) and parsed.sparsity == (0.0,)
