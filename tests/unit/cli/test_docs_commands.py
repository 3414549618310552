"""The commands and the Python example the README and the docs print are ones that work: each
`occamtune ...` line parses with the real parser, each `occamtune.f(...)` call binds to the public
function, and the CLI reference page is the parser's own help."""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from pathlib import Path

import pytest

import occamtune
from occamtune.cli import build_parser
from occamtune.cli.options import OVERRIDE

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines(text: str) -> list[str]:
    """`occamtune ...` command lines of the fenced bash blocks (comments and continuations off)."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line.startswith("occamtune "):
                lines.append(line)
    return lines


COMMANDS = [(page.name, line) for page in PAGES for line in shell_lines(page.read_text())]


def test_the_pages_show_commands() -> None:
    assert len(COMMANDS) >= 10 and any(p == "README.md" for p, _ in COMMANDS)


@pytest.mark.parametrize(("page", "line"), COMMANDS)
def test_each_printed_command_parses(page: str, line: str) -> None:
    args, extras = build_parser().parse_known_args(shlex.split(line)[1:])
    assert all(OVERRIDE.match(word) for word in extras), f"{page}: {line}: {extras}"
    assert not extras or getattr(args, "extras", False), f"{page}: {line}: {extras}"


def quickstart(page: Path) -> str:
    text = page.read_text()
    match = re.search(r"<!-- quickstart: begin.*?```python\n(.*?)```", text, re.DOTALL)
    assert match, f"{page} has no quickstart block"
    return match.group(1)


@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_the_python_quickstart_binds_to_the_public_api(page: str) -> None:
    tree = ast.parse(quickstart(ROOT / page))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "occamtune"]
    assert len(calls) >= 8
    for call in calls:
        name = call.func.attr
        assert name in occamtune.__all__, f"occamtune.{name} is not public API"
        signature = inspect.signature(getattr(occamtune, name))
        signature.bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords})


def test_the_cli_reference_page_is_the_parsers_help() -> None:
    from occamtune.cli.reference import PAGE, render

    assert PAGE.read_text(encoding="utf-8") == render(), \
        "docs/cli-reference.md is out of date: run python -m occamtune.cli.reference"
