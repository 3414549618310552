"""Command-line options generated from the typed configs, so that every setting is reachable.

Each key of `RunConfig` becomes `--section.key VALUE` (help: the field's description and
default, from the dataclass docstrings), beside the `section.key=value` overrides and the short
flags people type most (`--lr`, `--epochs`, ...). Values stay text here and are parsed once, by
`load_config`, whose errors name the key. Written on argparse rather than with a CLI library
(jsonargparse, typer): the YAML config file plus dotted overrides must keep their meaning, and
the overrides may stand anywhere on the line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from occamtune.config import DECODING, config_keys, nearest_keys
from occamtune.errors import ConfigError

# short flag -> config key: the settings people change most
SHORT = {
    "task": "task", "data": "data.path", "train": "data.train", "dev": "data.dev",
    "test": "data.test", "model": "model.name", "output": "output", "epochs": "train.epochs",
    "lr": "train.lr", "batch-size": "train.batch_size", "max-length": "data.max_length",
    "seed": "train.seed", "threads": "train.threads", "max-train": "data.max_train",
    "max-dev": "data.max_dev", "max-test": "data.max_test", "dev-fraction": "data.dev_fraction",
}
DEST = "cfg:"  # namespace attributes holding config values start with this
DECODE = "decode:"  # and those holding decoding settings given at inference
OVERRIDE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*=")


class Parser(argparse.ArgumentParser):
    """argparse that reads `-1e-4` as a value (it reads only `-1` and `-0.5` so by default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _default(value: Any) -> str:
    return "unset" if value is None else str(value)


def add_config_options(parser: argparse.ArgumentParser, choices: dict[str, list[str]]) -> None:
    """The short flags and every `--section.key`, grouped by section, with defaults in the help.

    Args:
        parser: the sub-command's parser.
        choices: allowed values of some keys (e.g. `task`: the registered tasks).
    """
    keys = {k.key: k for k in config_keys()}
    common = parser.add_argument_group("common settings (each also a --section.key)")
    for flag, key in SHORT.items():
        k = keys[key]
        common.add_argument(f"--{flag}", dest=DEST + key, default=argparse.SUPPRESS,
                            metavar=key.rsplit(".", 1)[-1].upper(), choices=choices.get(key),
                            help=f"{k.doc} (default: {_default(k.default)}"
                                 + (f"; = --{key})" if key != flag else ")"))
    groups: dict[str, Any] = {}
    for key, k in keys.items():
        if key == "overwrite" or key in SHORT:  # a plain flag; or the short flag is the key
            continue
        section = key.split(".")[0] if "." in key else "run"
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section} settings")
        groups[section].add_argument(f"--{key}", dest=DEST + key, default=argparse.SUPPRESS,
                                     metavar="VALUE", choices=choices.get(key),
                                     help=f"{k.doc} (default: {_default(k.default)})")


def add_decoding_options(parser: argparse.ArgumentParser) -> None:
    """`--generate.KEY VALUE` for each decoding setting: a text generator's, for this use
    instead of its run's (the other generate settings are fixed by training)."""
    keys = {k.key: k for k in config_keys()}
    group = parser.add_argument_group("decoding of a text generator (default: its run's settings)")
    for name in DECODING:
        group.add_argument(f"--generate.{name}", dest=DECODE + name, default=argparse.SUPPRESS,
                           metavar="VALUE", help=keys["generate." + name].doc)


def decoding_options(args: argparse.Namespace) -> dict[str, str] | None:
    """The decoding settings given on the line (None: the run's own)."""
    given = {name[len(DECODE):]: value for name, value in vars(args).items()
             if name.startswith(DECODE)}
    return given or None


def config_overrides(args: argparse.Namespace, extras: list[str], parser: argparse.ArgumentParser
                     ) -> list[str]:
    """`key=value` overrides from the generated options and from the free `key=value` words
    (anywhere on the line), in the order: options, then words. Anything else is an error naming
    the nearest valid options."""
    overrides = [f"{name[len(DEST):]}={value}" for name, value in vars(args).items()
                 if name.startswith(DEST)]
    keys = [k.key for k in config_keys()]
    for word in extras:
        if OVERRIDE.match(word):
            key = word.split("=", 1)[0]
            if key not in keys:
                near = nearest_keys(key, keys)
                hint = f"; did you mean {' or '.join(near)}?" if near else ""
                raise ConfigError(f"unknown config key {key!r}{hint} (`occamtune train --help` "
                                  "lists them all)")
            overrides.append(word)
        else:
            raise ConfigError(_unrecognized(word, parser))
    return overrides


def _unrecognized(word: str, parser: argparse.ArgumentParser) -> str:
    import difflib

    flags = [f for action in parser._actions for f in action.option_strings]
    name = word.split("=", 1)[0]
    near = difflib.get_close_matches(name, flags, n=3, cutoff=0.6)
    if not near and name.startswith("--"):
        near = [f"--{k}" for k in nearest_keys(name[2:].replace("-", "_"),
                                               [k.key for k in config_keys()])]
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    return f"unrecognized argument {word!r}{hint}"
