"""`occamtune report FOLDER`: read a shrink folder's records, write `report.html` (one
self-contained file) and `report.md` (with its plots as PNG files next to it).

    html_path, md_path = write_report("runs/ner-shrink")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from occamtune.errors import ConfigError
from occamtune.report.html import fmt, render_html
from occamtune.report.plots import description_length_plot, frontier_plot, latency_plot
from occamtune.search.records import on_onnx
from occamtune.tasks.tables import md_table

HEADER = ["trial", "pipeline", "bytes", "x smaller", "dev metric", "dev drop", "latency ms",
          "model bits", "data bits", "total bits"]


def read_shrink_folder(folder: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary (`shrink.json`) and the candidate records (`candidates.jsonl`)."""
    folder = Path(folder)
    summary_file = folder / "shrink.json"
    if not summary_file.is_file():
        raise ConfigError(f"{folder} has no shrink.json; give the --output folder of "
                          "`occamtune shrink`")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    cand_file = folder / "candidates.jsonl"
    lines = cand_file.read_text(encoding="utf-8").splitlines() if cand_file.is_file() else []
    return summary, [json.loads(line) for line in lines if line.strip()]


def summary_cards(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Headline numbers of the chosen model: what it costs and what it gains."""
    cards = [("bytes on disk (fp32: " + fmt(s.get("base_bytes")) + ")", fmt(s.get("chosen_bytes"))),
             ("times smaller than fp32", _ratio(s.get("size_ratio")))]
    for split in ("dev", "test"):
        chosen, base = s.get(f"chosen_{split}_metric"), s.get(f"base_{split}_metric")
        if chosen is not None:
            drop = f" (drop {fmt(base - chosen)})" if base is not None else ""
            cards.append((f"{split} {s.get('metric', 'metric')}{drop}", fmt(chosen)))
    if s.get("chosen_latency_ms") is not None:
        on = ", ONNX Runtime" if on_onnx(s) else ""
        cards.append((f"ms / sentence, batch 32{on} (fp32 torch: {fmt(s.get('base_latency_ms'))})",
                      fmt(s["chosen_latency_ms"])))
        cards.append(("times faster than fp32", _ratio(s.get("latency_ratio"))))
    return cards


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}x" if value >= 10 else f"{value:.2f}x"


def candidate_rows(candidates: list[dict], summary: dict[str, Any]) -> list[tuple[list[str], bool]]:
    """One table row per candidate, smallest first; the chosen one flagged."""
    base = summary.get("base_bytes") or 0
    rows = []
    for c in sorted(candidates, key=lambda c: (c["bytes"], -c["dev_metric"])):
        ratio = base / c["bytes"] if base and c["bytes"] else None
        row = [str(c["trial"]), c["pipeline"] or "(none)", fmt(c["bytes"]), _ratio(ratio),
               fmt(c["dev_metric"]), fmt(c["dev_drop"]), fmt(c.get("latency_ms")),
               fmt(int(c["model_bits"])), fmt(int(c["data_bits"])), fmt(int(c["total_bits"]))]
        rows.append((row, c["trial"] == summary.get("chosen_trial")))
    return rows


def render_markdown(summary: dict[str, Any], rows: list[tuple[list[str], bool]],
                    images: dict[str, str]) -> str:
    s = summary
    parts = [f"# Shrink report: {s.get('run_folder')}",
             (f"Task {s.get('task')}, metric {s.get('metric')}, max drop {s.get('max_drop')} "
              f"on dev; {trials_text(s, len(rows))} in {fmt(s.get('search_wall_s'))} s.")]
    if s.get("chosen_pipeline") is not None:
        parts += [f"## Chosen model (trial {s.get('chosen_trial')})", f"`{s['chosen_pipeline']}`",
                  md_table(["", "value"], [[k, v] for k, v in summary_cards(s)])]
    else:
        parts += ["## No model within the allowed drop",
                  "Give the search more trials or time, or allow a larger drop."]
    parts += [f"## Size against {s.get('metric')}", f"![frontier]({images['frontier']})"]
    if "latency" in images:
        parts += [f"## Size against latency (chosen by {s.get('objective') or 'size'})",
                  f"![size against latency]({images['latency']})"]
    parts += ["## Description length (model bits + dev data bits)",
              f"![description length]({images['dl']})", "## All candidates (* = chosen)",
              md_table(HEADER, [[f"{r[0]}*" if chosen else r[0], *r[1:]] for r, chosen in rows])]
    return "\n\n".join(parts) + "\n"


def trials_text(s: dict[str, Any], distinct: int) -> str:
    """E.g. "5 distinct pipelines measured in 54 trials (7 pruned early, 0 failed)": a pipeline
    sampled again counts as a trial, its measurement is reused."""
    t = s.get("trials") or {}
    return (f"{distinct} distinct pipelines measured in {t.get('complete', 0)} trials "
            f"({t.get('pruned', 0)} pruned early, {t.get('failed', 0)} failed)")


def write_report(shrink_folder: str | Path) -> tuple[Path, Path]:
    """Write `report.html`, `report.md`, `frontier.png`, `size_latency.png` (when candidates
    were timed) and `description_length.png`."""
    from occamtune.io import atomic_write_text

    folder = Path(shrink_folder)
    summary, candidates = read_shrink_folder(folder)
    candidates = [c for c in candidates if "duplicate_of" not in c]  # re-sampled pipelines
    frontier = frontier_plot(candidates, summary)
    dl = description_length_plot(candidates, summary)
    images = {"frontier": "frontier.png", "dl": "description_length.png"}
    latency = None
    if any(c.get("latency_ms") is not None for c in candidates):
        latency = latency_plot(candidates, summary)
        images["latency"] = "size_latency.png"
        (folder / images["latency"]).write_bytes(latency)
    (folder / images["frontier"]).write_bytes(frontier)
    (folder / images["dl"]).write_bytes(dl)
    rows = candidate_rows(candidates, summary)
    html = render_html(summary, summary_cards(summary), HEADER, rows, frontier, dl,
                       trials_text(summary, len(rows)), latency)
    atomic_write_text(folder / "report.html", html)
    atomic_write_text(folder / "report.md", render_markdown(summary, rows, images))
    return folder / "report.html", folder / "report.md"
