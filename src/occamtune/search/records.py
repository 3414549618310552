"""What a search leaves behind: candidate records, the Pareto frontier, the chosen candidate.

The Optuna study is the source of truth (it is shared by every worker); the files in the output
folder are rewritten from it, atomically, after each trial and at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# what a measurement may add (where the candidate lives, who measured it, its ONNX export)
PASSED_THROUGH = ("artifact", "worker", "seconds", "artifact_bytes", "deployed", "weights")
RECORD_KEYS = ("pipeline", "bytes", "dev_metric", "dev_drop", "latency_ms", "model_bits",
               "data_bits", "total_bits", *PASSED_THROUGH)


def on_onnx(summary: dict[str, Any]) -> bool:
    """Whether a search summary's candidates were measured as ONNX exports (runtime "onnx" or
    "onnx-int8"), not in torch."""
    return str(summary.get("runtime") or "torch") != "torch"


def write_json(path: str | Path, obj: Any) -> None:
    """JSON, written by temp file + rename."""
    from occamtune.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def make_record(trial_number: int, pipeline: str, params: dict[str, Any], measured: dict[str, Any],
                base_metric: float) -> dict[str, Any]:
    """A candidate's record: pipeline, bytes, dev metric and drop, latency, two-part code."""
    model_bits = 8 * int(measured["bytes"])
    return {"trial": trial_number, "pipeline": pipeline, "params": params,
            "bytes": int(measured["bytes"]), "dev_metric": float(measured["dev_metric"]),
            "dev_drop": float(base_metric - measured["dev_metric"]),
            "latency_ms": float(measured["latency_ms"]), "model_bits": model_bits,
            "data_bits": float(measured["data_bits"]),
            "total_bits": model_bits + float(measured["data_bits"]),
            **{k: measured[k] for k in PASSED_THROUGH if k in measured}}


def trial_record(trial: Any) -> dict[str, Any] | None:
    """The record stored in a finished trial's user attributes (None when it has none)."""
    attrs = trial.user_attrs
    if "bytes" not in attrs or trial.state.name != "COMPLETE":
        return None
    record = {"trial": trial.number, "params": dict(trial.params)}
    record.update({k: attrs[k] for k in RECORD_KEYS if k in attrs})
    if "duplicate_of" in attrs:
        record["duplicate_of"] = attrs["duplicate_of"]
    return record


def study_records(study: Any) -> list[dict[str, Any]]:
    """Records of every complete trial of the study, by trial number."""
    trials = study.get_trials(deepcopy=False)
    return [r for r in (trial_record(t) for t in trials) if r is not None]


def trial_counts(study: Any) -> dict[str, int]:
    """Trials per state: complete, pruned, failed, running, waiting (queued, not started)."""
    counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        key = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
               "WAITING": "waiting"}.get(t.state.name, "running")
        counts[key] += 1
    return counts


FAIL_ATTR = "fail_reason"  # user attribute: the exception a failed trial raised


def fail_reason(trial: Any) -> str:
    """Why a failed trial failed: the exception the objective kept (or a killed worker's note)."""
    return str(trial.user_attrs.get(FAIL_ATTR) or trial.system_attrs.get(FAIL_ATTR)
               or "no reason kept (its worker may have been killed)")


def failures(study: Any, limit: int = 400) -> list[dict[str, Any]]:
    """The failed trials: number, pipeline and reason (its first `limit` characters), so that a
    search whose trials failed says which and why."""
    return [{"trial": t.number, "pipeline": t.user_attrs.get("pipeline"),
             "reason": fail_reason(t)[:limit]}
            for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]


def choose(records: list[dict[str, Any]], max_drop: float, objective: str = "size",
           max_latency_ms: float | None = None) -> dict[str, Any] | None:
    """Among the candidates whose dev drop is at most `max_drop` and, where given, whose latency
    is at most `max_latency_ms`: the smallest (`objective` "size"), the fastest ("latency") or
    the one with the least bytes x latency ("both"); ties: the better dev metric."""
    ok = [r for r in records if r["dev_drop"] <= max_drop + 1e-9 and "duplicate_of" not in r
          and (max_latency_ms is None or r["latency_ms"] <= max_latency_ms)]
    cost = {"size": lambda r: r["bytes"], "latency": lambda r: r["latency_ms"],
            "both": lambda r: r["bytes"] * r["latency_ms"]}[objective]
    return min(ok, key=lambda r: (cost(r), -r["dev_metric"], r["trial"]), default=None)


def pareto_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records not dominated in (bytes down, dev metric up, latency down), smallest first."""
    rows = [r for r in records if "duplicate_of" not in r]

    def dominates(a: dict, b: dict) -> bool:
        no_worse = (a["bytes"] <= b["bytes"] and a["dev_metric"] >= b["dev_metric"]
                    and a["latency_ms"] <= b["latency_ms"])
        better = (a["bytes"] < b["bytes"] or a["dev_metric"] > b["dev_metric"]
                  or a["latency_ms"] < b["latency_ms"])
        return no_worse and better

    front = [r for r in rows if not any(dominates(o, r) for o in rows if o is not r)]
    return sorted(front, key=lambda r: (r["bytes"], -r["dev_metric"]))


def write_records(output: Path, records: list[dict[str, Any]]) -> None:
    """`candidates.jsonl` (one record a line) and `frontier.json`."""
    from occamtune.io import atomic_write_text

    atomic_write_text(output / "candidates.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_json(output / "frontier.json", {
        "objectives": {"bytes": "minimize", "dev_metric": "maximize", "latency_ms": "minimize"},
        "trials": pareto_records(records)})


def replace_folder(src: Path, dst: Path) -> None:
    """Copy folder `src` to `dst`, replacing what is there only once the copy is complete."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals: wall time of possibly concurrent sessions."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total
