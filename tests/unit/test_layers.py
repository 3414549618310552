"""The package's layers point one way, with no import cycles.

Every import in `src/occamtune` (at any depth: inside functions too) is read with `ast`. A module
may import its own layer and the layers below it, never one above; and no set of modules imports
itself round in a cycle (a package's `__init__` importing its own children excepted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "src" / "occamtune"

# Lowest first. A module belongs to the first entry whose prefix it has.
LAYERS: list[tuple[str, ...]] = [
    ("occamtune.errors", "occamtune.io"),
    ("occamtune.config",),
    ("occamtune.data",),
    ("occamtune.tasks",),
    ("occamtune.models", "occamtune.inference"),
    ("occamtune.train",),
    ("occamtune.compress",),
    ("occamtune.export", "occamtune.export_nbits", "occamtune.gguf_writer",
     "occamtune.onnx_generate", "occamtune.onnx_seq2seq", "occamtune.onnx_cache",
     "occamtune.onnx_attention"),  # the search measures exports
    ("occamtune.search",),
    ("occamtune.report", "occamtune.serve"),
    ("occamtune.api",),
    ("occamtune.cli",),
]


def modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def layer(module: str) -> int:
    if module == "occamtune":  # the package facade re-exports the API: the top, with the CLI
        return len(LAYERS) - 1
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"module {module} is in no layer of {__file__}: add it to LAYERS")


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (an imported name resolved to its module)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rsplit(".", 1)[0]
                    base = f"{pkg}.{base}" if base else pkg
                # `from pkg import mod` imports the module, `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m and not (f.name == "__init__.py" and t.startswith(m + ".")):
                    edges[m].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(imports(modules())) == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
                    for m, targets in imports(modules()).items() for t in targets
                    if layer(t) > layer(m))
    assert upward == []


def test_the_check_sees_a_cycle_and_an_upward_import() -> None:
    edges = {"occamtune.models.x": {"occamtune.compress.y"}, "occamtune.compress.y": {"occamtune.models.x"}}
    assert cycles(edges) == [["occamtune.compress.y", "occamtune.models.x"]]
    assert layer("occamtune.compress.y") > layer("occamtune.models.x")
    with pytest.raises(AssertionError, match="in no layer"):
        layer("occamtune.somewhere_new")
