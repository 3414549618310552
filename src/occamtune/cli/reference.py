"""`python -m occamtune.cli.reference [--check]`: the CLI reference page (docs/cli-reference.md),
written from the parser's own help, so that the page cannot drift from the command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[3] / "docs" / "cli-reference.md"


def render() -> str:
    from occamtune.cli import build_parser, subcommands

    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: fix it for the page
    parser = build_parser()
    commands = subcommands(parser)
    parts = ["# Command-line reference", "",
             ("Generated from `occamtune --help` by `python -m occamtune.cli.reference`; a "
              "test fails when it is out of date."), "", "```text", parser.format_help().rstrip(), "```"]
    for name, sub in commands.items():
        parts += ["", f"## occamtune {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--check", action="store_true", help="exit 1 when the page is out of date")
    args = cli.parse_args()
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python -m occamtune.cli.reference", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
