"""The report of a shrink folder: self-contained HTML, Markdown with PNGs, the chosen row marked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from occamtune.errors import ConfigError
from occamtune.report.plots import pareto_front
from occamtune.report.render import write_report


def _candidate(trial: int, nbytes: int, f1: float) -> dict:
    return {"trial": trial, "pipeline": f"quantize(bits={trial + 2})", "bytes": nbytes,
            "dev_metric": f1, "dev_drop": 80.0 - f1, "latency_ms": 1.5, "model_bits": 8 * nbytes,
            "data_bits": 1000.0 + 10 * trial, "total_bits": 8 * nbytes + 1000.0 + 10 * trial}


def _shrink_folder(folder: Path, chosen: bool = True) -> Path:
    cands = [_candidate(0, 4000, 79.5), _candidate(1, 2000, 79.2), _candidate(2, 1000, 60.0)]
    summary = {"run_folder": "runs/<ner>", "task": "ner", "metric": "f1", "max_drop": 1.0,
               "base_bytes": 40000, "base_dev_metric": 80.0, "base_test_metric": 78.0,
               "base_latency_ms": 3.0, "base_data_bits": 900.0, "search_wall_s": 12.5,
               "trials": {"complete": 3, "pruned": 1, "failed": 0},
               "peer": {"name": "ONNX Runtime int8", "bytes": 11000, "test_metric": 77.5}}
    if chosen:
        summary.update({"chosen_trial": 1, "chosen_pipeline": cands[1]["pipeline"],
                        "chosen_bytes": 2000, "chosen_dev_metric": 79.2, "chosen_test_metric": 77.4,
                        "chosen_latency_ms": 1.5, "size_ratio": 20.0, "latency_ratio": 2.0})
    (folder / "shrink.json").write_text(json.dumps(summary))
    (folder / "candidates.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cands))
    return folder


def test_report_is_self_contained_html_and_markdown(tmp_path) -> None:
    html_path, md_path = write_report(_shrink_folder(tmp_path))
    html = html_path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "external resource"
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == 3
    assert "runs/&lt;ner&gt;" in html  # escaped
    assert 'class="chosen"' in html and "quantize(bits=3)" in html
    md = md_path.read_text()
    assert "![frontier](frontier.png)" in md and "| 1* |" in md
    assert "![size against latency](size_latency.png)" in md
    for name in ("frontier.png", "description_length.png", "size_latency.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_latency_search_on_onnx(tmp_path) -> None:
    folder = _shrink_folder(tmp_path)
    summary = json.loads((folder / "shrink.json").read_text())
    summary.update({"runtime": "onnx", "objective": "both", "max_latency_ms": 2.0})
    (folder / "shrink.json").write_text(json.dumps(summary))
    html_path, md_path = write_report(folder)
    html, md = html_path.read_text(), md_path.read_text()
    assert "each\ncandidate as its ONNX export on ONNX Runtime" in html and "Chosen by both" in html
    assert "ms / sentence, batch 32, ONNX Runtime (fp32 torch: 3.00)" in md
    assert "## Size against latency (chosen by both)" in md


def test_a_report_of_candidates_without_latencies_has_no_latency_plot(tmp_path) -> None:
    folder = _shrink_folder(tmp_path)
    cands = [json.loads(line) for line in (folder / "candidates.jsonl").read_text().splitlines()]
    (folder / "candidates.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in c.items() if k != "latency_ms"}) + "\n" for c in cands))
    html_path, md_path = write_report(folder)
    assert html_path.read_text().count("data:image/png;base64,") == 2
    assert "size_latency" not in md_path.read_text() and not (folder / "size_latency.png").exists()


def test_report_without_a_chosen_model(tmp_path) -> None:
    html_path, md_path = write_report(_shrink_folder(tmp_path, chosen=False))
    assert "No model within the allowed drop" in html_path.read_text()
    assert "No model within the allowed drop" in md_path.read_text()


def test_report_needs_a_shrink_folder(tmp_path) -> None:
    with pytest.raises(ConfigError, match="shrink.json"):
        write_report(tmp_path)


def test_pareto_front_keeps_non_dominated_points() -> None:
    points = [(4.0, 79.5), (2.0, 79.2), (1.0, 60.0), (3.0, 70.0), (2.0, 75.0)]
    assert pareto_front(points) == [2, 1, 0]
