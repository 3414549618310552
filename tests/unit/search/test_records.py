"""Choosing, the Pareto frontier and wall time from search records."""

from __future__ import annotations

from occamtune.search.records import choose, make_record, pareto_records, union_seconds


def _rec(trial: int, nbytes: int, f1: float, ms: float, base: float = 80.0) -> dict:
    return make_record(trial, f"p{trial}", {}, {"bytes": nbytes, "dev_metric": f1, "latency_ms": ms,
                                                "data_bits": 10.0}, base)


def test_choose_smallest_within_drop() -> None:
    recs = [_rec(0, 100, 79.5, 1.0), _rec(1, 50, 79.0, 1.0), _rec(2, 10, 70.0, 1.0)]
    assert choose(recs, 1.0)["trial"] == 1
    assert choose(recs, 0.1) is None
    assert recs[0]["total_bits"] == 8 * 100 + 10.0 and recs[1]["dev_drop"] == 1.0


def test_pareto_over_three_objectives() -> None:
    recs = [_rec(0, 100, 79.5, 1.0), _rec(1, 100, 79.0, 2.0), _rec(2, 10, 70.0, 3.0),
            _rec(3, 100, 79.5, 0.5)]
    assert [r["trial"] for r in pareto_records(recs)] == [2, 3]


def test_union_of_sessions() -> None:
    assert union_seconds([(0, 10), (5, 12), (20, 25)]) == 17
    assert union_seconds([]) == 0


def test_choose_by_latency_or_both_and_within_a_latency_limit() -> None:
    recs = [_rec(0, 100, 79.5, 1.9), _rec(1, 50, 79.0, 4.0), _rec(2, 80, 79.2, 2.0),
            _rec(3, 10, 60.0, 0.1)]  # 3: fastest and smallest, but beyond the drop
    assert choose(recs, 1.0)["trial"] == 1
    assert choose(recs, 1.0, objective="latency")["trial"] == 0
    assert choose(recs, 1.0, objective="both")["trial"] == 2  # 80 x 2 < 100 x 1.9 < 50 x 4
    assert choose(recs, 1.0, max_latency_ms=3.0)["trial"] == 2  # the smallest at most 3 ms
    assert choose(recs, 1.0, objective="latency", max_latency_ms=0.5) is None
