"""Reading and writing benchmark results, each with the provenance of the run that measured it.

Every benchmark writes `<name>.json` (the numbers) and `<name>.md` (its table, made from those
numbers by the script's own `table` function) through `write_results`, which adds

    "provenance": {"commit": ..., "dirty": ..., "date": ..., "versions": {...}, "machine": {...}}

`benchmarks/docs.py` renders the documentation's benchmark pages from the JSON files alone.
Results written before provenance was recorded have none; the pages say so.

`OCCAMTUNE_BENCH_RESULTS` moves the results folder (the smoke tests write into a temporary one).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("occamtune", "torch", "transformers", "accelerate", "peft", "optuna", "onnxruntime",
            "numpy")


def results_dir() -> Path:
    """`benchmarks/results`, or the folder `OCCAMTUNE_BENCH_RESULTS` names."""
    return Path(os.environ.get("OCCAMTUNE_BENCH_RESULTS") or ROOT / "benchmarks" / "results")


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """The commit (and whether the tree had uncommitted changes), the UTC date, library versions
    and the machine of the run being recorded."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }


def read_results(path: str | Path) -> tuple[Any, dict[str, Any] | None]:
    """(the data, its provenance or None) of a results JSON file."""
    data = json.loads(Path(path).read_text())
    prov = data.pop("provenance", None) if isinstance(data, dict) else None
    return data, prov


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def write_results(name: str, data: dict[str, Any], markdown: str | None = None) -> Path:
    """Write `<name>.json` (`data` plus the provenance of this run) and, given, `<name>.md`, into
    `results_dir()`. Returns the JSON path."""
    if not isinstance(data, dict):
        raise TypeError(f"results data must be a dict (it gets a 'provenance' key), got {type(data)}")
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in data.items() if k != "provenance"}
    record["provenance"] = provenance()
    path = folder / f"{name}.json"
    _write_text(path, json.dumps(record, indent=2) + "\n")
    if markdown is not None:
        _write_text(folder / f"{name}.md", markdown.rstrip("\n") + "\n")
    return path


def measured_side(cache: Path, settings: dict[str, Any], cmd: list[str], label: str,
                  reuse: bool) -> dict[str, Any]:
    """One side of a side-by-side benchmark, run as `cmd` in its own process (its peak memory
    is its own), whose last stdout line is its JSON result; written to `cache` as soon as it is
    measured (a long run cut short keeps what it has). With `reuse`, a cached result measured
    with the same `settings` is returned instead."""
    import json
    import subprocess
    import sys

    if reuse and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("settings") == settings:
            return cached
    print("running", label, flush=True)
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        sys.exit(f"{label} failed:\n{proc.stderr[-4000:]}")
    result = {**json.loads(proc.stdout.strip().splitlines()[-1]), "settings": settings}
    cache.write_text(json.dumps(result))
    return result

