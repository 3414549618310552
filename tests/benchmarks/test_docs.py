"""The benchmark pages and the README's results agree with benchmarks/results/*.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import docs, results_io

ROOT = Path(__file__).resolve().parents[2]


def test_generated_pages_and_readme_match_the_results_json() -> None:
    stale = [str(p.relative_to(ROOT)) for p in docs.stale()]
    assert not stale, f"out of date: {stale}; run `python -m benchmarks.docs`"


def test_every_results_file_has_a_page() -> None:
    shown = {s.results for page in docs.PAGES for s in page.sections}
    files = {p.name for p in (ROOT / "benchmarks" / "results").glob("*.json")}
    assert files <= shown, f"results without a docs page: {sorted(files - shown)}"


def test_a_file_without_provenance_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OCCAMTUNE_BENCH_RESULTS", str(tmp_path))
    (tmp_path / "refit.json").write_text(json.dumps({"base_dev_f1": 90.0, "rows": []}))
    page = next(p for p in docs.PAGES if p.slug == "structured-refit")
    assert "Provenance not recorded" in docs.render_page(page, tmp_path)
    results_io.write_results("refit", {"base_dev_f1": 90.0, "rows": []}, "table")
    data, prov = results_io.read_results(tmp_path / "refit.json")
    assert data == {"base_dev_f1": 90.0, "rows": []}
    assert prov["date"] and "torch" in prov["versions"] and "python" in prov["versions"]
    assert (tmp_path / "refit.md").read_text() == "table\n"
    text = docs.render_page(page, tmp_path)
    assert "Provenance not recorded" not in text and "Measured at commit" in text


def _quickstart(path: Path) -> str:
    text = path.read_text()
    found = re.search(r"<!-- quickstart: begin.*?-->\n(.*?)<!-- quickstart: end -->", text, re.DOTALL)
    assert found, f"no quickstart markers in {path}"
    return found.group(1)


def test_the_python_quick_start_is_the_same_in_the_readme_and_the_docs() -> None:
    assert _quickstart(ROOT / "README.md") == _quickstart(ROOT / "docs" / "api.md")


def test_the_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines; move detail to docs/"
