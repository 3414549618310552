"""`shrink`: search compression pipelines for the smallest model that keeps the dev metric within
`max_drop` of the fine-tuned model, then confirm the chosen one once on test.

The search is an Optuna multi-objective study (bytes down, dev metric up, latency down) in Optuna
storage: a SQLite file in the output folder by default, or any database URL. Several processes or
hosts started with the same `storage` and `study_name` share the work; a search started again on
the same storage continues where it stopped (finished trials are kept; a trial a killed worker
left running is failed after its heartbeat stops and retried once). Optuna's TPE sampler proposes
the pipelines, except where their cost decides what fits in the budget: `schedule.py` queues the
training of students first, QAT retries of narrow misses, and the cheap pipelines that reuse a
cached student, and defers a proposal whose student another worker is training.

    result = shrink("runs/ner", "runs/ner-shrink", max_drop=1.0, budget_seconds=90 * 60)

Output folder: `candidates/<trial>/` (artifacts), `candidates.jsonl`, `frontier.json`,
`chosen/` (the chosen artifact, with its test evaluation), `shrink.json` (summary), `cache/`
(trained students, reused by every pipeline that starts with the same training step). With
`runtime="onnx"` (the default when the objective or a latency limit involves speed), each
candidate is measured as the ONNX file it deploys to (`candidates/<trial>-onnx/`, and
`chosen-onnx/` beside `chosen/`): its bytes, dev metric and latency on ONNX Runtime.

    shrink("runs/ner", "runs/ner-fast", objective="both", max_latency_ms=2.0, budget_trials=40)
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from occamtune.errors import ConfigError
from occamtune.io import check_apart, note
from occamtune.search import records as rec
from occamtune.search.schedule import (
    DEFERRED_ATTR,
    QUEUED_ATTR,
    check_retry_still_smallest,
    defer_if_being_trained,
    queue_next,
)
from occamtune.search.space import (
    RETRY_ATTR,
    SearchSpace,
    build_pipeline,
    refused_methods,
    suggest_params,
)
from occamtune.search.trial import (
    Hopeless,
    Measure,
    Teacher,
    deployed_folder,
    latency_ms,
    load_teacher,
    measure_base,
    run_candidate,
)

DIRECTIONS = ["minimize", "maximize", "minimize"]  # bytes, dev metric, latency
MAX_FAILS = 3
# Proposals in a row of pipelines measured already (reused, not counted toward --trials): past
# this many the sampler has nothing new left to propose within the budget's reach.
MAX_DUPLICATES = 10
FINALIZE_LOCK = ".finalize.lock"
STALE_BEATS = 4  # heartbeats missed before a running trial counts as its worker's death
LATENCY_ROUNDS = 2  # the chosen model and the fp32 one timed in alternation, this many times each
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class ShrinkResult:
    """What `shrink` returns: the summary written to `shrink.json` and where things are."""

    output: Path
    summary: dict[str, Any]
    chosen: dict[str, Any] | None
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chosen_folder(self) -> Path | None:
        return self.output / "chosen" if self.chosen else None


def shrink(run_folder: str | Path, output: str | Path, max_drop: float = 1.0,
           budget_trials: int | None = None, budget_seconds: float | None = None,
           storage: str | None = None, study_name: str | None = None, seed: int | None = 13,
           space: SearchSpace | None = None, measure: Measure | None = None,
           progress: bool = True, finalize_search: bool = True,
           heartbeat_s: int = 30, objective: str = "size", max_latency_ms: float | None = None,
           runtime: str | None = None, decoding: dict[str, Any] | None = None) -> ShrinkResult:
    """Search compression pipelines of the model in `run_folder`; write results into `output`.

    Args:
        run_folder: a folder written by `occamtune train`.
        output: folder for candidates, records, the chosen model and the summary.
        max_drop: the largest allowed loss of the dev metric (F1 or accuracy points).
        budget_trials: trials this process runs (each worker counts its own).
        budget_seconds: the search's time: no trial starts after it, nor once the median
            trial so far would not end within it (a trial is not cut short).
        storage: Optuna storage URL; default `sqlite:///<output>/study.db`.
        study_name: the study to create or join; default "shrink".
        seed: sampler seed (offset by the trials already in the study, so a resumed search or a
            later worker does not repeat the first proposals); None for a random one.
        space: the pipelines to consider; default `SearchSpace()`.
        measure: dev-slice pruning and latency settings.
        progress: show a progress bar (trial n of N, best so far).
        finalize_search: choose, confirm on test and write the summary when done (False: a
            worker that only runs trials, leaving that to another process on the study).
        heartbeat_s: seconds between a running trial's heartbeats in the storage; a trial
            silent for `STALE_BEATS` of them (its worker was killed) is failed and retried once.
        objective: which candidate within the tolerance is chosen: "size" (the smallest),
            "latency" (the fastest) or "both" (the least bytes x latency).
        max_latency_ms: choose only among candidates at most this slow (ms per sentence at
            the latency batch, on the runtime measured).
        runtime: "torch" (the artifact as `load` runs it), "onnx" (its ONNX export, what
            `export --weights auto` writes: the bytes, metric and latency of that file) or
            "onnx-int8" (`--weights auto-int8`: 4-bit codes on the int8 kernels); None: "onnx"
            when the objective or a latency limit involves speed, else "torch".
        decoding: a generator's decoding settings (`generate` keys such as
            `repetition_penalty`, `inference.set_decoding`) to score the base and every
            candidate with, and that the choice keeps; None: the run's own. A study searched
            with other settings is refused.
    """
    if budget_trials is None and budget_seconds is None:
        raise ConfigError("give a budget: --trials N and/or --budget TIME (e.g. 90m)")
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0, got {max_drop}")
    if not isinstance(heartbeat_s, int) or heartbeat_s < 1:
        raise ConfigError(f"--heartbeat must be a whole number of seconds >= 1, got {heartbeat_s!r}")
    started = time.time()
    out = Path(output)
    check_apart(out, {"run": run_folder})
    out.mkdir(parents=True, exist_ok=True)
    m = measure or Measure()
    if runtime is None:
        runtime = "onnx" if objective != "size" or max_latency_ms is not None else "torch"
    m = Measure(**{**asdict(m), "max_drop": max_drop, "objective": objective,
                   "max_latency_ms": max_latency_ms, "runtime": runtime})
    teacher = load_teacher(run_folder, decoding)
    teacher.base = _base(teacher, out, m)
    refused = refused_methods(teacher.model)
    for why in refused.values():
        note(f"shrink: left out of the search: {why}")
    space = (space or SearchSpace()).for_teacher(teacher.num_layers, tuple(refused))
    study = open_study(storage or f"sqlite:///{out.resolve()}/study.db", study_name or "shrink",
                       seed, space, teacher, max_drop, heartbeat_s, m.runtime)
    run_trial = _objective(teacher, space, out, m, poll_s=min(5.0, heartbeat_s))

    def plan() -> None:  # what to measure next when its cost matters (see schedule.py)
        queue_next(study, space, teacher, out / "cache", max_drop, m.retry_factor)

    plan()
    _optimize(study, run_trial, budget_trials, budget_seconds, m, teacher, out, progress,
              space.size(), plan=plan)
    if not finalize_search:
        _record_session(study, started)
        return ShrinkResult(out, {"trials": rec.trial_counts(study)}, None, rec.study_records(study))
    return finalize(study, teacher, out, m, space, started)


def _base(teacher: Teacher, out: Path, m: Measure) -> dict[str, Any]:
    """Base measurements, cached in `base.json` (a resumed search does not redo them)."""
    import json

    path = out / "base.json"
    if path.is_file():
        base = json.loads(path.read_text(encoding="utf-8"))
        if (base.get("teacher") == teacher.identity and base.get("prune_slice") == m.prune_slice
                and base.get("decoding", {}) == teacher.decoding):
            return base
    base = {**measure_base(teacher, m), "teacher": teacher.identity, "prune_slice": m.prune_slice,
            **({"decoding": teacher.decoding} if teacher.decoding else {})}
    rec.write_json(path, base)
    return base


def open_study(storage: str, name: str, seed: int | None, space: SearchSpace, teacher: Teacher,
               max_drop: float, heartbeat_s: int = 30, runtime: str = "torch") -> Any:
    """Create or join the study; a study searching another space or model, or measuring on
    another runtime, is refused (the objective and latency limit only change the choice)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(storage=_storage(storage, heartbeat_s), study_name=name,
                                directions=DIRECTIONS,
                                load_if_exists=True)
    settings = {"space": space.to_dict(), "teacher": teacher.identity, "max_drop": max_drop}
    if runtime != "torch":  # (a study from before runtimes existed measured in torch)
        settings["runtime"] = runtime
    if teacher.decoding:  # (likewise: a study without them decoded as the run does)
        settings["decoding"] = teacher.decoding
    known = study.user_attrs.get("settings")
    if known is None:
        study.set_user_attr("settings", settings)
    elif _jsonish(known) != _jsonish(settings):
        raise ConfigError(f"study {name!r} in {storage} searches other settings ({known}); give "
                          f"another --study or --output, or the same model, space, --max-drop, "
                          f"--runtime and decoding settings")
    offset = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=None if seed is None else seed + offset, constant_liar=True)
    return study


def _jsonish(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def _storage(url: str, heartbeat_s: int = 30) -> Any:
    """RDB storage with heartbeats, so a trial whose worker died is failed and retried."""
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        return url
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    if not url.startswith("sqlite:///"):
        return _rdb(url, kwargs, heartbeat_s)
    # Workers started together on a new SQLite file race to create its schema (alembic's version
    # row): let one create it while the others wait on a lock file beside the database.
    from filelock import FileLock

    with FileLock(url.removeprefix("sqlite:///") + ".lock"):
        return _rdb(url, kwargs, heartbeat_s)


def _rdb(url: str, kwargs: dict, heartbeat_s: int) -> Any:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
                      grace_period=STALE_BEATS * heartbeat_s,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))


def _objective(teacher: Teacher, space: SearchSpace, out: Path, m: Measure,
               poll_s: float = 5.0) -> Any:
    import optuna

    from occamtune.compress import format_pipeline

    def objective(trial: Any) -> tuple[float, float, float]:
        try:
            return measure(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # Optuna logs it but keeps no reason with the trial: keep one
            trial.set_user_attr(rec.FAIL_ATTR, f"{type(exc).__name__}: {exc}")
            raise

    def measure(trial: Any) -> tuple[float, float, float]:
        params = suggest_params(trial, space)
        configs = build_pipeline(params, space)
        pipeline = format_pipeline(configs)
        trial.set_user_attr("pipeline", pipeline)
        if RETRY_ATTR in trial.user_attrs:
            check_retry_still_smallest(trial, max_drop=m.max_drop)
        defer_if_being_trained(trial, configs, teacher, out / "cache")
        record = _duplicate(trial, pipeline, poll_s)
        if record is None:
            try:
                measured = run_candidate(teacher, configs, out / "candidates" / str(trial.number),
                                         out / "cache", m)
            except Hopeless as exc:
                trial.set_user_attr("pruned_because", str(exc))
                raise optuna.TrialPruned(str(exc)) from exc
            record = rec.make_record(trial.number, pipeline, params, measured,
                                     teacher.base["dev_metric"])
        record = {**record, "worker": WORKER}
        for key in rec.RECORD_KEYS:
            if key in record:
                trial.set_user_attr(key, record[key])
        return record["bytes"], record["dev_metric"], record["latency_ms"]

    return objective


def _duplicate(trial: Any, pipeline: str, poll_s: float = 5.0) -> dict[str, Any] | None:
    """A completed trial's record for the same pipeline (sampled again): reused, not recomputed.

    When an earlier trial (another worker's) is still measuring the same pipeline, wait for it;
    when one was pruned, this one is pruned too. Only earlier trials are waited for, so two
    workers never wait on each other. A trial whose worker was killed stays RUNNING: Optuna fails
    stale trials (no heartbeat for the grace period) only when a trial starts, so each wait asks
    it again (`fail_stale_trials`, which also queues the retry); the dead trial then ends the wait.
    """
    import optuna

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(trial.study)
        waiting = False
        for other in trial.study.get_trials(deepcopy=False):
            if (other.number >= trial.number or other.user_attrs.get("pipeline") != pipeline
                    or other.user_attrs.get(DEFERRED_ATTR)):
                continue
            done = rec.trial_record(other)
            if done is not None and "duplicate_of" not in done:
                trial.set_user_attr("duplicate_of", other.number)
                return done
            if other.state.name == "PRUNED":
                trial.set_user_attr("duplicate_of", other.number)
                raise optuna.TrialPruned(f"same pipeline as trial {other.number}, pruned")
            waiting = waiting or other.state.name == "RUNNING"
        if not waiting:
            return None
        time.sleep(poll_s)


def _optimize(study: Any, objective: Any, n_trials: int | None, timeout: float | None,
              m: Measure, teacher: Teacher, out: Path, progress: bool,
              space_size: int | None = None, plan: Any = None) -> None:
    """Run trials; a failing pipeline is recorded and skipped, but MAX_FAILS failures in a row
    (a broken method or setup rather than one bad pipeline) stop the search with the error.
    After each trial `plan()` may queue the next trial (`schedule.queue_next`), which the next
    free worker takes first. The search also stops once every pipeline of the space has been measured
    and no retry waits, and, with a `timeout`, before a trial that `_expected_seconds` says would
    end after it (Optuna's own timeout only stops starting trials, so the last one overran)."""
    from occamtune.io import progress as progress_bar

    bar = progress_bar(n_trials, "shrink", "trial", progress)
    fails: list[str] = []
    start = time.monotonic()
    ends = [start]  # a trial's time here is from the previous one's end to its own
    durations: dict[str, list[float]] = {}  # by kind: "sampled" or what schedule.py queued
    counted = [0]  # this process's trials toward n_trials
    repeats = [0]  # trials in a row that reused a measured pipeline

    def after_trial(study: Any, trial: Any) -> None:
        records = rec.study_records(study)
        rec.write_records(out, records)
        best = rec.choose(records, **m.goal())
        fails[:] = fails + [rec.fail_reason(trial)] if trial.state.name == "FAIL" else []
        if len(fails) >= MAX_FAILS:
            study.stop()
        if plan is not None:
            plan()
        trials = study.get_trials(deepcopy=False)
        tried = {r["pipeline"] for r in records} | {
            t.user_attrs.get("pipeline") for t in trials
            if t.state.name == "PRUNED" and not t.user_attrs.get(DEFERRED_ATTR)}
        sampled = {p for p in tried if p is not None} - {
            t.user_attrs.get("pipeline") for t in trials if RETRY_ATTR in t.user_attrs}
        waiting = any(t.state.name == "WAITING" for t in trials)
        if space_size is not None and len(sampled) >= space_size and not waiting:
            study.stop()
        # A deferred trial did nothing, and one reusing a measured pipeline cost nothing: neither
        # counts toward n_trials (a search of 4 trials measured 2 pipelines when its sampler
        # proposed each twice), but a run of such proposals ends the search.
        repeat = "duplicate_of" in trial.user_attrs
        repeats[0] = repeats[0] + 1 if repeat else 0
        counted[0] += not (trial.user_attrs.get(DEFERRED_ATTR) or repeat)
        if (n_trials is not None and counted[0] >= n_trials) or repeats[0] >= MAX_DUPLICATES:
            study.stop()
        ends.append(time.monotonic())
        if not (trial.user_attrs.get(DEFERRED_ATTR) or "duplicate_of" in trial.user_attrs):
            kind = trial.user_attrs.get(QUEUED_ATTR, "sampled")  # (deferred, reused: no time)
            durations.setdefault(kind, []).append(ends[-1] - ends[-2])
        if timeout is not None and ends[-1] - start + _expected_seconds(trials, durations) > timeout:
            study.stop()
        bar.update(1)
        bar.set_description(f"trial {bar.n} of {n_trials or '?'}")
        bar.set_postfix_str("best so far: " + (f"{best['bytes']:,} B, dev {teacher.metric} "
                                               f"{best['dev_metric']:.2f}" if best else "none yet"))

    try:
        study.optimize(objective, n_trials=None, timeout=timeout, callbacks=[after_trial],  # (counted)
                       catch=(Exception,), gc_after_trial=True)
    finally:
        bar.close()
    if len(fails) >= MAX_FAILS:
        raise RuntimeError(f"{len(fails)} trials failed in a row; the last: {fails[-1]}")


def _expected_seconds(trials: list[Any], durations: dict[str, list[float]]) -> float:
    """How long the next trial will take. A queued one (schedule.py) as long as the longest of its
    kind so far, in any worker (a student's training, a QAT retry and a pipeline reusing a cached
    student differ tenfold); when none of its kind has ended, a "cached" one (it trains nothing)
    as the longest sampled trial, and any other as the longest trial here; a sampled one as the
    median of this worker's sampled trials. Trials reused from an earlier identical one (no time
    spent) are not counted."""
    import statistics

    def ended(kind: str) -> list[float]:
        return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                if t.user_attrs.get(QUEUED_ATTR, "sampled") == kind and t.state.name == "COMPLETE"
                and t.datetime_start and t.datetime_complete and "duplicate_of" not in t.user_attrs]

    waiting = [t for t in trials if t.state.name == "WAITING"]
    every = [d for v in durations.values() for d in v]
    if waiting:
        kind = waiting[0].user_attrs.get(QUEUED_ATTR, "sampled")
        seen = durations.get(kind, []) + ended(kind)
        if not seen and kind == "cached":  # measured like a sampled pipeline: nothing to train
            seen = durations.get("sampled", []) + ended("sampled")
        if seen or kind != "sampled":
            return max(seen or every, default=0.0)
    sampled = durations.get("sampled") or every
    return statistics.median(sampled) if sampled else 0.0


def finalize(study: Any, teacher: Teacher, out: Path, m: Measure, space: SearchSpace,
             started: float) -> ShrinkResult:
    """Records, frontier, the chosen model (confirmed once on test) and `shrink.json`.

    One process at a time per output folder (`FINALIZE_LOCK`): two finalizing at once replaced
    `chosen/` under each other and reported different choices; the later one now waits and
    chooses from the study as the earlier one left it.
    """
    from filelock import FileLock

    with FileLock(str(out / FINALIZE_LOCK)):
        return _finalize(study, teacher, out, m, space, started)


def _finalize(study: Any, teacher: Teacher, out: Path, m: Measure, space: SearchSpace,
              started: float) -> ShrinkResult:
    records = rec.study_records(study)
    rec.write_records(out, records)
    chosen = rec.choose(records, **m.goal())
    test = None
    if chosen is not None:
        src = _chosen_source(chosen, teacher, space, out, m)
        deployed = deployed_folder(src) if m.runtime != "torch" else None
        test = _confirm_on_test(study, chosen, teacher, deployed or src, m)
        rec.write_json(src / "shrink_choice.json", {**chosen, "test": test})
        if (out / "chosen").resolve() != src.resolve():
            rec.replace_folder(src, out / "chosen")
            if deployed is not None:
                rec.replace_folder(deployed, deployed_folder(out / "chosen"))
    _record_session(study, started)
    summary = summarize(study, records, chosen, test, teacher, m)
    rec.write_json(out / "shrink.json", summary)
    return ShrinkResult(out, summary, chosen, records)


def _record_session(study: Any, started: float) -> None:
    """This process's [start, end] on the study: the search's wall time is their union."""
    session = f"session:{socket.gethostname()}:{os.getpid()}:{started:.3f}"
    study.set_user_attr(session, [started, time.time()])


def _chosen_source(chosen: dict[str, Any], teacher: Teacher, space: SearchSpace, out: Path,
                   m: Measure) -> Path:
    """The chosen candidate's artifact folder (its ONNX export beside it, with an ONNX runtime);
    rebuilt here when they live on another host."""
    src = Path(chosen.get("artifact") or "")
    missing = [src] + ([deployed_folder(src)] if m.runtime != "torch" else [])
    if not all((f / "occamtune.json").is_file() for f in missing):
        src = out / "candidates" / str(chosen["trial"])
        loose = Measure(**{**asdict(m), "prune_factor": float("inf")})
        run_candidate(teacher, build_pipeline(chosen["params"], space), src, out / "cache", loose)
    return src


def _confirm_on_test(study: Any, chosen: dict[str, Any], teacher: Teacher, folder: Path,
                     m: Measure) -> dict[str, Any] | None:
    """The chosen model's test metric (`folder`: the artifact, or its ONNX export with an ONNX
    runtime), and its latency timed in alternation with the fp32 model's (the search's own latencies were taken minutes apart, on a machine whose load
    changes): evaluated once per chosen trial, then read from the study."""
    key = f"test:{chosen['trial']}"
    if "latency_ms" in study.user_attrs.get(key, {}):  # (studies before paired timing lack it)
        return study.user_attrs[key]
    if "test" not in teacher.splits:
        return None
    from occamtune.models import load_model
    from occamtune.train.run import evaluate_split

    model = load_model(folder)[0]
    metrics = evaluate_split(model, teacher.splits["test"], folder, "test")
    test = {"metric": float(metrics[teacher.metric]), "data_bits": float(metrics["data_bits"])}
    feats = teacher.splits["dev"].features[:m.latency_sentences]
    for _ in range(LATENCY_ROUNDS):
        for name, run in (("latency_ms", model), ("base_latency_ms", teacher.model)):
            test[name] = test.get(name, 0.0) + latency_ms(run, feats, m.latency_batch) / LATENCY_ROUNDS
    study.set_user_attr(key, test)
    return test


def summarize(study: Any, records: list[dict], chosen: dict | None, test: dict | None,
              teacher: Teacher, m: Measure) -> dict[str, Any]:
    """The `shrink.json` summary (metric-named aliases such as `base_test_f1` included)."""
    base, metric = teacher.base, teacher.metric
    sessions = [tuple(v) for k, v in study.user_attrs.items() if k.startswith("session:")]
    s: dict[str, Any] = {
        "run_folder": str(teacher.folder), "task": teacher.cfg.task, "metric": metric,
        "max_drop": m.max_drop, "objective": m.objective, "max_latency_ms": m.max_latency_ms,
        "runtime": m.runtime, "study": study.study_name, "trials": rec.trial_counts(study),
        **({"decoding": teacher.decoding} if teacher.decoding else {}),
        "failures": rec.failures(study),
        "search_wall_s": rec.union_seconds(sessions), "base_bytes": teacher.fp32_bytes,
        "base_dev_metric": base["dev_metric"], "base_test_metric": base.get("test_metric"),
        "base_latency_ms": base["latency_ms"], "base_data_bits": base["data_bits"],
        "chosen_trial": None, "chosen_pipeline": None, "chosen_bytes": None,
        "chosen_dev_metric": None, "chosen_test_metric": None,
    }
    if chosen is not None:
        s.update({"chosen_trial": chosen["trial"], "chosen_pipeline": chosen["pipeline"],
                  "chosen_bytes": chosen["bytes"], "chosen_dev_metric": chosen["dev_metric"],
                  "chosen_test_metric": test["metric"] if test else None,
                  "chosen_data_bits": chosen["data_bits"],
                  "chosen_artifact_bytes": chosen.get("artifact_bytes", chosen["bytes"]),
                  "chosen_weights": chosen.get("weights"),
                  "size_ratio": teacher.fp32_bytes / chosen["bytes"],
                  "dev_drop": chosen["dev_drop"]})
        # Timed side by side with the fp32 model when confirmed on test, else the search's own.
        timed = test if test and "latency_ms" in test else \
            {"latency_ms": chosen["latency_ms"], "base_latency_ms": base["latency_ms"]}
        s.update({"chosen_latency_ms": timed["latency_ms"], "base_latency_ms": timed["base_latency_ms"],
                  "latency_ratio": timed["base_latency_ms"] / timed["latency_ms"]})
        if test and base.get("test_metric") is not None:
            s["test_drop"] = base["test_metric"] - test["metric"]
    for split in ("dev", "test"):
        s[f"base_{split}_{metric}"] = s[f"base_{split}_metric"]
        s[f"chosen_{split}_{metric}"] = s[f"chosen_{split}_metric"]
    return s
