"""Markdown tables for the tasks' evaluation reports (and the search report)."""

from __future__ import annotations

from typing import Any


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; floats shown with two decimals."""
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
