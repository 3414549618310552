"""The model card of a packed artifact: `card.json` and `card.md`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from occamtune.compress.pipeline import format_pipeline, pipeline_from_dicts
from occamtune.io import atomic_write_text
from occamtune.models import TaskModel, count_parameters


def card_data(model: TaskModel, info: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    """The card's facts: pipeline, bytes, ratio to fp32, parameters, metrics and speed."""
    pipeline = info.get("pipeline", [])
    return {
        "task": model.head_config.task,
        "labels": model.labels,
        "pipeline": format_pipeline(pipeline_from_dicts(pipeline)) if pipeline else "",
        "steps": info.get("steps", []),
        "bytes_on_disk": sizes["model_occ"],
        "fp32_bytes": sizes.get("fp32_bytes"),
        "ratio": sizes.get("ratio"),
        "parameters": count_parameters(model),
        "codec": info.get("codec"),
        "base_model": info.get("base_model"),
        "metrics": info.get("metrics"),
        "speed": info.get("speed"),
    }


def card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# occamtune model card ({card['task']})", "",
             f"- pipeline: `{card['pipeline'] or 'none'}`",
             f"- bytes on disk (model.occ, {card['codec']}): {card['bytes_on_disk']:,}"]
    if card["ratio"]:
        lines.append(f"- fp32 size: {card['fp32_bytes']:,} bytes; compression ratio "
                     f"{card['ratio']:.1f}x")
    lines.append(f"- parameters: {card['parameters']:,}")
    if card["base_model"]:
        lines.append(f"- base model: {card['base_model']}")
    lines += ["", "| step | parameters before | after | trainable |", "|---|---|---|---|"]
    lines += [f"| {s['config']['method']} | {s['params_before']:,} | {s['params_after']:,} | "
              f"{s['trainable']:,} |" for s in card["steps"]]
    for key in ("metrics", "speed"):
        if card[key]:
            lines += ["", f"## {key}", ""]
            lines += [f"- {k}: {v}" for k, v in card[key].items() if not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def write_card(folder: Path, model: TaskModel, info: dict[str, Any], sizes: dict[str, Any]) -> None:
    card = card_data(model, info, sizes)
    atomic_write_text(folder / "card.json", json.dumps(card, indent=2))
    atomic_write_text(folder / "card.md", card_markdown(card))
