"""What the search measures next, when its cost matters: one queued trial at a time.

Optuna's sampler knows nothing of what a pipeline costs: a candidate whose steps train (a student,
structured pruning) takes ten minutes or more, one that reuses a cached trained model a minute,
and quantization-aware training (QAT) as long again. Within a time budget the order decides what
gets measured at all, so after each trial (and when a worker starts) the search queues, when no
queued trial waits already, the first of:

1. when no trial is training anything, a pipeline whose trained steps are not cached: the
   longest jobs first, so that they end within the budget (and a proposal whose training step
   another worker is training is deferred: no two workers train the same student);
2. a QAT retry (the next value of a retry dimension: `quant_epochs`): of the candidates that
   missed the tolerance on dev by less than `factor` times it (`Measure.retry_factor`, 1.5: a far miss is not worth ten
   minutes) and are smaller than the best one that kept it, the smallest, with the next QAT
   epochs. QAT keeps the bytes and trains the model to its own
   rounding, recovering the losses of every step before it (the same pipelines with and without
   QAT: docs/benchmarks/compression.md);
3. an untried pipeline whose trained steps are cached (no training: a minute), the most
   compressed first (by each method's `level`, in `level_rank` order: with the shipped methods
   fewest bits, codebook, trimmed vocabulary at the lowest rank): the search looks for the
   smallest model that keeps the tolerance. Skipped: one compressed no further in any step than
   a candidate on the same student (the dimensions of the methods that train) that kept the
   tolerance (it cannot be smaller), or at least as far in every step as one pruned as hopeless
   (it cannot keep it).

Otherwise the sampler (TPE) proposes. A queued retry is dropped when a model at least as small
has kept the tolerance since it was queued.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from occamtune.compress import SearchDim, format_pipeline, parse_pipeline, search_methods
from occamtune.search import records as rec
from occamtune.search.space import RETRY_ATTR, SearchSpace, build_pipeline, points, search_dims

QUEUED_ATTR = "queued"  # user attribute of a trial this module queued: "train", "retry" or "cached"
DEFERRED_ATTR = "deferred"  # a sampled trial pruned because another worker trains its first step


def space_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every pipeline the sampler can propose, as the parameters `suggest_params` would give."""
    return list(points(space))


def next_training(configs: list[Any], teacher: Any, cache: Path) -> str | None:
    """The first prefix of `configs` ending in a step that trains and not yet in the cache (what
    measuring the pipeline would train first), as text; None when nothing is left to train."""
    from occamtune.search.trial import prefix_key

    for i, config in enumerate(configs):
        if config.training() and not (cache / prefix_key(teacher, configs[:i + 1])
                                       / "occamtune.json").is_file():
            return format_pipeline(configs[:i + 1])
    return None


def being_trained(trials: list[Any], teacher: Any, cache: Path,
                  exclude: int | None = None) -> dict[str, int]:
    """{prefix text: trial number} of what the running `trials` (but `exclude`) are training."""
    out = {}
    for t in trials:
        pipeline = t.user_attrs.get("pipeline")
        if t.state.name == "RUNNING" and t.number != exclude and pipeline:
            step = next_training(parse_pipeline(pipeline), teacher, cache)
            if step is not None:
                out[step] = t.number
    return out


def _ranked() -> list[Any]:
    """The methods whose steps are compared by how far they compress, in `level_rank` order."""
    return sorted((m for m in search_methods() if m.level_rank is not None),
                  key=lambda m: m.level_rank)


def compressed_first(point: dict[str, Any]) -> tuple:
    """Sort key: the point compressing furthest comes first, compared method by method in
    `level_rank` order (with the shipped methods: fewer bits, codebook, trimmed vocabulary at a
    lower rank, sparser, less low-rank energy)."""
    return tuple(-method.level(point) for method in _ranked())


def queue_next(study: Any, space: SearchSpace, teacher: Any, cache: Path, max_drop: float,
               factor: float) -> str | None:
    """Queue the next trial by the rules above; returns what was queued ("train", "retry",
    "cached") or None (a queued trial waits already, or the sampler proposes)."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "WAITING" for t in trials):
        return None
    tried = {t.user_attrs.get("pipeline") for t in trials if not t.user_attrs.get(DEFERRED_ATTR)}
    training = being_trained(trials, teacher, cache)
    points = []  # (params, pipeline, what it would train first, whether it trains anything)
    for point in space_points(space):
        configs = build_pipeline(point, space)
        trains = any(c.training() for c in configs)
        points.append((point, format_pipeline(configs), next_training(configs, teacher, cache), trains))
    fresh = sorted((x for x in points if x[2] is not None and x[1] not in tried),
                   key=lambda x: compressed_first(x[0]))
    if fresh and not training:
        return _enqueue(study, fresh[0][0], {QUEUED_ATTR: "train"})
    retry = _retry(study, space, max_drop, factor, trials)
    if retry is not None:
        return _enqueue(study, retry[0], {QUEUED_ATTR: "retry", RETRY_ATTR: retry[1]["trial"],
                                          "retry_bytes": retry[1]["bytes"]})
    kept, hopeless = _outcomes(trials, max_drop)
    cached = sorted((x for x in points if x[3] and x[2] is None and x[1] not in tried
                     and not any(_same_student(x[0], k) and _at_least(k, x[0]) for k in kept)
                     and not any(_same_student(x[0], h) and _at_least(x[0], h) for h in hopeless)),
                    key=lambda x: compressed_first(x[0]))
    if cached:
        return _enqueue(study, cached[0][0], {QUEUED_ATTR: "cached"})
    return None


def _outcomes(trials: list[Any], max_drop: float) -> tuple[list[dict], list[dict]]:
    """Params of the trials that kept the tolerance, and of those pruned as hopeless."""
    kept = [t.params for t in trials if t.state.name == "COMPLETE"
            and t.user_attrs.get("dev_drop", float("inf")) <= max_drop]
    hopeless = [t.params for t in trials if t.state.name == "PRUNED"
                and str(t.user_attrs.get("pruned_because", "")).startswith("dev-slice")]
    return kept, hopeless


def _student() -> list[str]:
    """The sampled dimensions of the methods that train: what makes the student."""
    return [d.name for m in search_methods() if m.trains for d in m.search_dims if d.sampled]


def _same_student(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k, 0) == b.get(k, 0) for k in _student())


def _levels(p: dict[str, Any]) -> tuple:
    """How far each step after the student compresses (higher: further)."""
    return tuple(method.level(p) for method in _ranked() if not method.trains)


def _at_least(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """`a` compresses at least as far as `b` in every step after the student."""
    return all(x >= y for x, y in zip(_levels(a), _levels(b)))


def _enqueue(study: Any, params: dict[str, Any], attrs: dict[str, Any]) -> str:
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    return attrs[QUEUED_ATTR]


def _retry(study: Any, space: SearchSpace, max_drop: float, factor: float,
           trials: list[Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(params of the retry, the record retried) or None."""
    ladders = [(d, list(getattr(space, d.name))) for d in search_dims().values()
               if d.retry and len(getattr(space, d.name)) > 1]
    if not ladders:
        return None
    records = rec.study_records(study)
    best = rec.choose(records, max_drop)
    limit = best["bytes"] if best else float("inf")
    asked = {t.user_attrs.get(RETRY_ATTR) for t in trials}
    near = sorted((r for r in records if max_drop < r["dev_drop"] <= factor * max_drop
                   and r["bytes"] < limit and r["trial"] not in asked and "duplicate_of" not in r
                   and _next_rung(r["params"], ladders)),
                  key=lambda r: (r["bytes"], r["dev_drop"]))
    if not near:
        return None
    r = near[0]
    return {**r["params"], **_next_rung(r["params"], ladders)}, r


def _next_rung(params: dict[str, Any], ladders: list[tuple[SearchDim, list]]) -> dict[str, Any]:
    """The next value of the first retry dimension that `params` can climb ({}: none)."""
    for dim, ladder in ladders:
        if dim.at(params):
            i = ladder.index(params.get(dim.name, ladder[0]))
            if i + 1 < len(ladder):
                return {dim.name: ladder[i + 1]}
    return {}


def defer_if_being_trained(trial: Any, configs: list[Any], teacher: Any, cache: Path,
                           wait_s: float = 5.0) -> None:
    """Prune (for now) a pipeline whose first training step another running trial is training
    (after `wait_s`, so that a worker does not spin through proposals): the sampler may propose
    it again once that step is cached, at no training cost. Deferred trials do not count
    toward a worker's `--trials`.

    A running trial that has not yet written its pipeline may be training the same step: two
    workers started together took the queued pipeline and sampled the same one within
    milliseconds, and the second then waited a whole training for the first (`_duplicate`)
    with its core idle. So such a trial is looked at again until it says, or until `wait_s`.
    """
    import optuna

    deadline = time.monotonic() + wait_s
    while True:
        step = next_training(configs, teacher, cache)
        trials = trial.study.get_trials(deepcopy=False)
        other = being_trained(trials, teacher, cache, exclude=trial.number).get(step)
        unsaid = any(t.state.name == "RUNNING" and t.number != trial.number
                     and "pipeline" not in t.user_attrs for t in trials)
        if step is None or (other is None and not unsaid) or time.monotonic() >= deadline:
            break
        time.sleep(min(0.2 if other is None else 1.0, wait_s))
    if step is not None and other is not None:
        trial.set_user_attr(DEFERRED_ATTR, True)
        raise optuna.TrialPruned(f"trial {other} is training {step}; deferred")


def check_retry_still_smallest(trial: Any, max_drop: float) -> None:
    """A queued QAT retry is dropped when a model at least as small kept the tolerance since."""
    import optuna

    best = rec.choose(rec.study_records(trial.study), max_drop)
    if best is not None and best["bytes"] <= trial.user_attrs.get("retry_bytes", 0):
        raise optuna.TrialPruned(f"trial {best['trial']} ({best['bytes']:,} B) keeps the "
                                 f"tolerance and is no larger")
