"""Helpers of the benchmark scripts: the shrink record's misses, the nbits export cache."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.shrink import smaller_misses, table


def _candidates(folder: Path, rows: list[tuple[int, str, int, float]]) -> None:
    lines = [json.dumps({"trial": t, "pipeline": p, "bytes": b, "dev_metric": 90.0 - d,
                         "dev_drop": d, "duplicate_of": None}) for t, p, b, d in rows]
    (folder / "candidates.jsonl").write_text("\n".join(lines) + "\n")


def test_smaller_misses_are_the_smallest_over_the_tolerance_below_the_choice(tmp_path) -> None:
    _candidates(tmp_path, [(0, "a", 100, 3.0), (1, "b", 200, 1.01), (2, "b", 200, 1.2),
                           (3, "chosen", 300, 0.9), (4, "c", 250, 0.5), (5, "big", 400, 2.0),
                           (6, "d", 150, 1.5)])
    misses = smaller_misses(tmp_path, 300, 1.0, n=2)
    assert [(m["pipeline"], m["bytes"]) for m in misses] == [("a", 100), ("d", 150)]
    assert [m["pipeline"] for m in smaller_misses(tmp_path, 300, 1.0)] == ["a", "d", "b"]
    assert smaller_misses(tmp_path, 300, 5.0) == []  # nothing over a loose tolerance
    assert [m["pipeline"] for m in smaller_misses(tmp_path, None, 1.0, n=9)] == ["a", "d", "b", "big"]


def test_the_table_shows_the_misses_and_older_records_without_them() -> None:
    keys = {"base_bytes": 1000, "chosen_bytes": 300, "size_ratio": 1000 / 300, "base_dev_f1": 92.0,
            "chosen_dev_f1": 91.1, "base_test_f1": 88.0, "chosen_test_f1": 87.5,
            "chosen_pipeline": "chosen", "budget_s": 60.0, "finetune_wall_s": 20.0,
            "search_wall_s": 50.0, "trials": {"complete": 3}, "max_drop": 1.0,
            "peer": {"bytes": 250, "dev_metric": 91.9, "test_metric": 87.9}}
    old = table(keys)
    assert "outside the tolerance" not in old
    new = table({**keys, "smaller_misses": [{"pipeline": "b", "bytes": 200, "dev_f1": 90.99,
                                             "dev_drop": 1.01}]})
    assert "| smaller, outside the tolerance: `b` | 200 | 5.0 | 90.99 (drop 1.01) | - |" in new


def test_nbits_caches_the_exports_of_two_artifacts_of_one_name_apart(tmp_path) -> None:
    from benchmarks.nbits import export_cache
    from occamtune.compress.artifact import ARTIFACT_FILE

    first, second = tmp_path / "a" / "chosen", tmp_path / "b" / "chosen"
    for folder, data in ((first, b"one"), (second, b"two")):
        folder.mkdir(parents=True)
        (folder / ARTIFACT_FILE).write_bytes(data)
    assert export_cache(first) != export_cache(second)
    assert export_cache(first).name.startswith("chosen-")
    (second / ARTIFACT_FILE).write_bytes(b"one")
    assert export_cache(first) == export_cache(second)  # the same file: the same exports
