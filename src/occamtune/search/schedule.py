"""What the search measures next, when its cost matters: one queued trial at a time.

Optuna's sampler knows nothing of what a pipeline costs: a candidate whose steps train (a student,
structured pruning) takes ten minutes or more, one that reuses a cached trained model a minute,
and quantization-aware training (QAT) as long again. Within a time budget the order decides what
gets measured at all, so after each trial (and when a worker starts) the search queues, when no
queued trial waits already, the first of:

1. when no trial is training anything, a pipeline whose trained steps are not cached: the
   longest jobs first, so that they end within the budget (and a proposal whose training step
   another worker is training is deferred: no two workers train the same student);
2. a QAT retry (`quant_epochs` beyond the first): of the candidates that missed the tolerance on
   dev by less than `factor` times it (`Measure.retry_factor`, 1.5: a far miss is not worth ten
   minutes) and are smaller than the best one that kept it, the smallest, with the next QAT
   epochs. QAT keeps the bytes and trains the model to its own
   rounding, recovering the losses of every step before it (the same pipelines with and without
   QAT: docs/benchmarks/compression.md);
3. an untried pipeline whose trained steps are cached (no training: a minute), the most
   compressed first (fewest bits, codebook, trimmed vocabulary at the lowest rank): the search
   looks for the smallest model that keeps the tolerance. Skipped: one compressed no further in
   any step than a candidate on the same student that kept the tolerance (it cannot be smaller),
   or at least as far in every step as one pruned as hopeless (it cannot keep it).

Otherwise the sampler (TPE) proposes. A queued retry is dropped when a model at least as small
has kept the tolerance since it was queued.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from occamtune.search import records as rec
from occamtune.search.space import RETRY_ATTR, SearchSpace, build_pipeline

QUEUED_ATTR = "queued"  # user attribute of a trial this module queued: "train", "retry" or "cached"
DEFERRED_ATTR = "deferred"  # a sampled trial pruned because another worker trains its first step


def space_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every pipeline the sampler can propose, as the parameters `suggest_params` would give."""
    tails = [{"sparsity": s, "lowrank_energy": e} for s in space.sparsity
             for e in (space.lowrank_energy if s == 0.0 else (0.0,))]
    vocabs = [{"vocab_trim": False}] * (False in space.vocab_trim) + [
        {"vocab_trim": True, "vocab_rank": r} for r in space.vocab_rank if True in space.vocab_trim]
    points = []
    for d, h, f, tail, vocab, cb, bits in itertools.product(
            space.distill_layers, space.heads, space.ffn, tails, vocabs, space.codebook, space.bits):
        point = {"distill_layers": d, "heads": h, "ffn": f, **tail, **vocab, "codebook": cb,
                 "bits": bits}
        if bits != 32 and len(space.quant_epochs) > 1:
            point["quant_epochs"] = space.quant_epochs[0]
        points.append(point)
    return points


def next_training(configs: list[Any], teacher: Any, cache: Path) -> str | None:
    """The first prefix of `configs` ending in a step that trains and not yet in the cache (what
    measuring the pipeline would train first), as text; None when nothing is left to train."""
    from occamtune.compress import format_pipeline
    from occamtune.search.trial import is_trained, prefix_key

    for i, config in enumerate(configs):
        if is_trained(config) and not (cache / prefix_key(teacher, configs[:i + 1])
                                       / "occamtune.json").is_file():
            return format_pipeline(configs[:i + 1])
    return None


def being_trained(trials: list[Any], teacher: Any, cache: Path,
                  exclude: int | None = None) -> dict[str, int]:
    """{prefix text: trial number} of what the running `trials` (but `exclude`) are training."""
    from occamtune.compress import parse_pipeline

    out = {}
    for t in trials:
        pipeline = t.user_attrs.get("pipeline")
        if t.state.name == "RUNNING" and t.number != exclude and pipeline:
            step = next_training(parse_pipeline(pipeline), teacher, cache)
            if step is not None:
                out[step] = t.number
    return out


def compressed_first(point: dict[str, Any]) -> tuple:
    """Sort key: fewer bits, codebook, trimmed vocabulary at a lower rank come first."""
    return (point.get("bits", 32), not point.get("codebook", False),
            not point.get("vocab_trim", False), point.get("vocab_rank", 0),
            -point.get("sparsity", 0.0), point.get("lowrank_energy", 0.0) or 1.0)


def queue_next(study: Any, space: SearchSpace, teacher: Any, cache: Path, max_drop: float,
               factor: float) -> str | None:
    """Queue the next trial by the rules above; returns what was queued ("train", "retry",
    "cached") or None (a queued trial waits already, or the sampler proposes)."""
    from occamtune.compress import format_pipeline
    from occamtune.search.trial import is_trained

    trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "WAITING" for t in trials):
        return None
    tried = {t.user_attrs.get("pipeline") for t in trials if not t.user_attrs.get(DEFERRED_ATTR)}
    training = being_trained(trials, teacher, cache)
    points = []  # (params, pipeline, what it would train first, whether it trains anything)
    for point in space_points(space):
        configs = build_pipeline(point, space)
        trains = any(is_trained(c) for c in configs)
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


STUDENT = ("distill_layers", "heads", "ffn", "sparsity", "lowrank_energy")  # the trained steps


def _outcomes(trials: list[Any], max_drop: float) -> tuple[list[dict], list[dict]]:
    """Params of the trials that kept the tolerance, and of those pruned as hopeless."""
    kept = [t.params for t in trials if t.state.name == "COMPLETE"
            and t.user_attrs.get("dev_drop", float("inf")) <= max_drop]
    hopeless = [t.params for t in trials if t.state.name == "PRUNED"
                and str(t.user_attrs.get("pruned_because", "")).startswith("dev-slice")]
    return kept, hopeless


def _same_student(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k, 0) == b.get(k, 0) for k in STUDENT)


def _levels(p: dict[str, Any]) -> tuple:
    """How far each step after the student compresses (higher: further)."""
    vocab = 1 / (1 + p.get("vocab_rank", 0)) if p.get("vocab_trim") else -1.0
    return (-p.get("bits", 32), bool(p.get("codebook", False)), vocab)


def _at_least(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """`a` compresses at least as far as `b` in every step after the student."""
    return all(x >= y for x, y in zip(_levels(a), _levels(b)))


def _enqueue(study: Any, params: dict[str, Any], attrs: dict[str, Any]) -> str:
    study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    return attrs[QUEUED_ATTR]


def _retry(study: Any, space: SearchSpace, max_drop: float, factor: float,
           trials: list[Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(params of the QAT retry, the record retried) or None."""
    ladder = list(space.quant_epochs)
    if len(ladder) < 2:
        return None
    records = rec.study_records(study)
    best = rec.choose(records, max_drop)
    limit = best["bytes"] if best else float("inf")
    asked = {t.user_attrs.get(RETRY_ATTR) for t in trials}
    near = sorted((r for r in records if max_drop < r["dev_drop"] <= factor * max_drop
                   and r["bytes"] < limit and r["trial"] not in asked and "duplicate_of" not in r
                   and r["params"].get("bits", 32) != 32
                   and ladder.index(r["params"].get("quant_epochs", ladder[0])) + 1 < len(ladder)),
                  key=lambda r: (r["bytes"], r["dev_drop"]))
    if not near:
        return None
    r = near[0]
    step = ladder[ladder.index(r["params"].get("quant_epochs", ladder[0])) + 1]
    return {**r["params"], "quant_epochs": step}, r


def defer_if_being_trained(trial: Any, configs: list[Any], teacher: Any, cache: Path,
                           wait_s: float = 5.0) -> None:
    """Prune (for now) a pipeline whose first training step another running trial is training
    (after `wait_s`, so that a worker does not spin through proposals): the sampler may propose
    it again once that step is cached, at no training cost. Deferred trials do not count
    toward a worker's `--trials`."""
    import optuna

    deadline = time.monotonic() + wait_s
    while True:
        step = next_training(configs, teacher, cache)
        other = being_trained(trial.study.get_trials(deepcopy=False), teacher, cache,
                              exclude=trial.number).get(step)
        if step is None or other is None or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, wait_s))
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
