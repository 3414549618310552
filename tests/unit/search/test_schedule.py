"""What the search measures next: training first, QAT retries of narrow misses, cached tails."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from occamtune.search.schedule import (
    DEFERRED_ATTR,
    check_retry_still_smallest,
    defer_if_being_trained,
    queue_next,
    space_points,
)
from occamtune.search.space import SearchSpace, build_pipeline, suggest_params

TEACHER = SimpleNamespace(identity="t")
DIRECTIONS = ["minimize", "maximize", "minimize"]


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=DIRECTIONS)


def _done(study, size: int, drop: float, params: dict, pipeline: str | None = None) -> None:
    from optuna.distributions import CategoricalDistribution

    dists = {k: CategoricalDistribution([v]) for k, v in params.items()}
    attrs = {"pipeline": pipeline or f"p{len(study.trials)}", "bytes": size,
             "dev_metric": 90.0 - drop, "dev_drop": drop, "latency_ms": 1.0}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                              values=[size, 90.0 - drop, 1.0], user_attrs=attrs))


def _waiting(study) -> list:
    return [t for t in study.trials if t.state.name == "WAITING"]


def test_a_narrow_miss_smaller_than_the_best_is_retried_with_qat(tmp_path) -> None:
    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False, True), bits=(8, 4), quant_epochs=(0, 2))
    study = _study()
    for point in space_points(space):  # every pipeline measured: nothing cached to queue
        _done(study, 1000, 9.0, point)
    _done(study, 500, 0.5, {"codebook": False, "bits": 8})   # keeps 1.0: the best, 500 B
    _done(study, 300, 5.0, {"codebook": False, "bits": 4})   # misses by far: not retried
    _done(study, 200, 1.8, {"codebook": True, "bits": 8})    # narrow miss
    _done(study, 100, 2.5, {"codebook": True, "bits": 4})    # narrow miss, the smallest: first
    _done(study, 600, 1.2, {"codebook": False, "bits": 4})   # larger than the best: never
    assert queue_next(study, space, TEACHER, tmp_path, max_drop=1.0, factor=1.5) is None  # far
    assert queue_next(study, space, TEACHER, tmp_path, max_drop=1.0, factor=3.0) == "retry"
    assert queue_next(study, space, TEACHER, tmp_path, max_drop=1.0, factor=3.0) is None  # one waits
    (waiting,) = _waiting(study)
    assert waiting.user_attrs["retry_of"] == 7 and waiting.user_attrs["retry_bytes"] == 100
    trial = study.ask()
    params = suggest_params(trial, space)
    assert params["quant_epochs"] == 2 and params["codebook"] and params["bits"] == 4
    assert build_pipeline(params, space)[-1].epochs == 2.0
    check_retry_still_smallest(trial, max_drop=1.0)  # still the smallest: goes on
    assert suggest_params(study.ask(), space)["quant_epochs"] == 0  # sampled: no QAT
    _done(study, 150, 1.5, {"codebook": True, "bits": 8, "vocab_trim": False})  # another miss
    assert queue_next(study, space, TEACHER, tmp_path, 1.0, 3.0) == "retry"  # a running one does not block
    assert _waiting(study)[0].user_attrs["retry_of"] == len(study.trials) - 2
    _done(study, 90, 0.2, {"codebook": True, "bits": 4, "vocab_trim": False})  # kept, smaller
    with pytest.raises(optuna.TrialPruned, match="no larger"):
        check_retry_still_smallest(trial, max_drop=1.0)


def test_training_goes_first_once_then_cached_tails_most_compressed_first(tmp_path) -> None:
    from occamtune.compress import format_pipeline
    from occamtune.search.schedule import next_training

    space = SearchSpace(distill_layers=(0,), ffn=(0.0, 0.5), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False, True), bits=(8, 4))
    study = _study()
    assert queue_next(study, space, TEACHER, tmp_path, 1.0, 3.0) == "train"
    trial = study.ask()  # a worker takes it: the structured pruning is being trained
    configs = build_pipeline(suggest_params(trial, space), space)
    trial.set_user_attr("pipeline", format_pipeline(configs))
    assert configs[0].ffn == 0.5 and configs[-1].bits == 4 and configs[1].name == "codebook"
    assert queue_next(study, space, TEACHER, tmp_path, 1.0, 3.0) is None  # nothing else trains
    other = study.ask()  # the sampler proposes a pipeline with the same training step: deferred
    same = build_pipeline({"ffn": 0.5, "codebook": False, "bits": 8}, space)
    with pytest.raises(optuna.TrialPruned, match=f"trial {trial.number} is training"):
        defer_if_being_trained(other, same, TEACHER, tmp_path, wait_s=0.1)
    assert other.user_attrs[DEFERRED_ATTR]
    defer_if_being_trained(study.ask(), build_pipeline({"ffn": 0.0, "bits": 8}, space), TEACHER,
                           tmp_path)  # nothing to train: goes on
    from occamtune.search.trial import prefix_key

    cached = tmp_path / prefix_key(TEACHER, configs[:1])
    cached.mkdir()
    (cached / "occamtune.json").write_text("{}")  # the training step is now cached
    assert next_training(same, TEACHER, tmp_path) is None
    study.tell(trial, [1, 1, 1])
    for t in study.trials:
        if t.state.name == "RUNNING":
            study.tell(t.number, state=optuna.trial.TrialState.PRUNED)
    assert queue_next(study, space, TEACHER, tmp_path, 1.0, 3.0) == "cached"
    params = suggest_params(study.ask(), space)  # the queued one: the most compressed untried
    assert (params["ffn"], params["bits"], params["codebook"]) == (0.5, 4, False)


def test_cached_tails_that_cannot_be_smallest_or_cannot_keep_the_tolerance_are_skipped(tmp_path) -> None:
    from occamtune.compress import format_pipeline
    from occamtune.search.trial import prefix_key

    space = SearchSpace(distill_layers=(0,), ffn=(0.5,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False, True), vocab_rank=(32,), codebook=(False, True), bits=(8, 4))
    student = build_pipeline({"ffn": 0.5, "bits": 32}, space)
    (tmp_path / prefix_key(TEACHER, student)).mkdir()
    (tmp_path / prefix_key(TEACHER, student) / "occamtune.json").write_text("{}")
    study = _study()
    _done(study, 100, 0.5, {"ffn": 0.5, "vocab_trim": False, "codebook": True, "bits": 4})  # kept
    params = {"ffn": 0.5, "vocab_trim": True, "vocab_rank": 32, "codebook": True, "bits": 8}
    study.add_trial(optuna.trial.create_trial(
        params=params, distributions={k: optuna.distributions.CategoricalDistribution([v])
                                      for k, v in params.items()},
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={"pruned_because": "dev-slice f1 10.0 vs base 90.0"}))
    queued = []
    while queue_next(study, space, TEACHER, tmp_path, 1.0, 3.0) == "cached":
        trial = study.ask()
        queued.append(suggest_params(trial, space))
        trial.set_user_attr("pipeline", format_pipeline(build_pipeline(queued[-1], space)))
        assert len(queued) < 8
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    # 8 tails: the kept one and 3 compressed no further (whole vocabulary); the hopeless one
    # (rank 32, codebook, 8 bits) and the one further (4 bits): the rest, most compressed first
    assert [(q["vocab_trim"], q["codebook"], q["bits"]) for q in queued] == [(True, False, 4),
                                                                             (True, False, 8)]


def test_a_proposal_racing_a_worker_that_has_not_yet_named_its_pipeline_is_deferred(tmp_path) -> None:
    """Two workers started together: one takes the queued pipeline, the other samples the same
    one before the first has written it. The second is deferred, not left to wait a training."""
    import threading
    import time

    from occamtune.compress import format_pipeline

    space = SearchSpace(distill_layers=(0,), ffn=(0.5,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False,), bits=(4,))
    configs = build_pipeline({"ffn": 0.5, "bits": 4}, space)
    study = _study()
    first, second = study.ask(), study.ask()  # both running, neither has said its pipeline
    naming = threading.Timer(0.3, lambda: first.set_user_attr("pipeline", format_pipeline(configs)))
    naming.start()
    with pytest.raises(optuna.TrialPruned, match=f"trial {first.number} is training"):
        defer_if_being_trained(second, configs, TEACHER, tmp_path, wait_s=2.0)
    naming.join()
    assert second.user_attrs[DEFERRED_ATTR]
    study.tell(first, [1, 1, 1])
    study.tell(second, state=optuna.trial.TrialState.PRUNED)
    study.ask()  # running, and never says: it holds a proposal up to wait_s, no longer
    start = time.monotonic()
    defer_if_being_trained(study.ask(), configs, TEACHER, tmp_path, wait_s=0.3)  # goes on
    assert 0.3 <= time.monotonic() - start < 2.0
