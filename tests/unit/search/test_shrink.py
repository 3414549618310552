"""The search on a tiny trained run: records, frontier, the chosen artifact, resume, pruning."""

from __future__ import annotations

import json

import optuna
import pytest

from occamtune.errors import ConfigError
from occamtune.search.shrink import shrink
from occamtune.search.space import SearchSpace
from occamtune.search.trial import Measure

SPACE = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0, 0.5), lowrank_energy=(0.0,),
                    vocab_trim=(False,), codebook=(False,), bits=(8, 4))


def _study(out) -> optuna.Study:
    return optuna.load_study(study_name="shrink", storage=f"sqlite:///{out.resolve()}/study.db")


@pytest.mark.slow  # several seconds: trials that train, then a resumed search
def test_shrink_writes_records_and_a_chosen_model_then_resumes(tmp_path, tiny_run) -> None:
    from occamtune import inference
    from occamtune.models import load_model

    out = tmp_path / "shrink"
    result = shrink(tiny_run, out, max_drop=100.0, budget_trials=3, space=SPACE, progress=False)
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    measured = [r for r in records if "duplicate_of" not in r]  # proposals of one measured
    assert len(measured) == 3 and len(records) == result.summary["trials"]["complete"]  # reused
    for r in records:
        assert r["model_bits"] == 8 * r["bytes"] and r["total_bits"] > r["model_bits"]
        assert r["latency_ms"] > 0 and r["pipeline"].startswith(("prune", "quantize"))
    frontier = json.loads((out / "frontier.json").read_text())["trials"]
    assert frontier and {r["trial"] for r in frontier} <= {r["trial"] for r in records}
    s = json.loads((out / "shrink.json").read_text())
    assert s["chosen_bytes"] == min(r["bytes"] for r in records if "duplicate_of" not in r)
    assert s["base_bytes"] == (tiny_run / "model.safetensors").stat().st_size
    for key in ("base_test_f1", "chosen_test_f1", "search_wall_s", "chosen_pipeline"):
        assert s[key] is not None, key
    test = _study(out).user_attrs[f"test:{s['chosen_trial']}"]  # timed side by side at the end
    assert s["chosen_latency_ms"] == test["latency_ms"] > 0
    assert s["latency_ratio"] == test["base_latency_ms"] / test["latency_ms"]
    model, _, _ = load_model(out / "chosen")
    assert (out / "chosen" / "eval_test.json").is_file()
    assert [r["trial"] for r in result.records] == [r["trial"] for r in records]

    again = shrink(tiny_run, out, max_drop=100.0, budget_trials=2, space=SPACE, progress=False)
    again_measured = [r for r in again.records if "duplicate_of" not in r]
    assert len(again_measured) == 4  # one more: the space of 4 is covered, so it stops there
    assert again.summary["trials"]["complete"] == len(again.records)
    assert again.summary["search_wall_s"] >= s["search_wall_s"]
    metrics = inference.evaluate(model, *_dev(tiny_run, model))
    assert metrics["f1"] == pytest.approx(s["chosen_dev_metric"])


def _dev(run, model):
    from occamtune.train.run import load_run_data

    _, splits = load_run_data(run, load_model_tok(run), model.labels)
    return splits["dev"].dataset, splits["dev"].features


def load_model_tok(run):
    from occamtune.models import load_model

    return load_model(run)[1]


def test_hopeless_trials_are_pruned(tmp_path, tiny_run, monkeypatch) -> None:
    import importlib

    module = importlib.import_module("occamtune.search.shrink")  # the attribute is the function
    real = module.measure_base
    monkeypatch.setattr(module, "measure_base", lambda t, m: {**real(t, m), "slice_metric": 1e6})
    out = tmp_path / "shrink"
    result = shrink(tiny_run, out, max_drop=1.0, budget_trials=2, space=SPACE, progress=False)
    assert result.summary["trials"]["pruned"] == 2 and result.chosen is None
    assert result.summary["chosen_bytes"] is None and not (out / "chosen").exists()


def test_a_study_with_other_settings_is_refused(tmp_path, tiny_run) -> None:
    out = tmp_path / "shrink"
    shrink(tiny_run, out, max_drop=100.0, budget_trials=1, space=SPACE, progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        shrink(tiny_run, out, max_drop=0.5, budget_trials=1, space=SPACE, progress=False)


def test_a_model_trained_again_in_the_same_folder_is_another_model(tmp_path, tiny_run) -> None:
    import os
    from pathlib import Path

    from occamtune.models import WEIGHTS_FILE, weights_identity

    out = tmp_path / "shrink"
    shrink(tiny_run, out, max_drop=100.0, budget_trials=1, space=SPACE, progress=False)
    weights = Path(tiny_run) / WEIGHTS_FILE
    stat, before = weights.stat(), weights_identity(tiny_run)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as a new training writes
    try:
        assert weights_identity(tiny_run) != before
        with pytest.raises(ConfigError, match="other settings"):
            shrink(tiny_run, out, max_drop=100.0, budget_trials=1, space=SPACE, progress=False)
    finally:
        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights_identity(tiny_run) == before


def test_a_budget_is_required(tmp_path, tiny_run) -> None:
    with pytest.raises(ConfigError, match="budget"):
        shrink(tiny_run, tmp_path / "x")


def test_the_search_stops_once_the_space_is_covered(tmp_path, tiny_run) -> None:
    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False,), bits=(8, 4))
    assert space.size() == 2
    result = shrink(tiny_run, tmp_path / "s", max_drop=100.0, budget_trials=30, space=space,
                    progress=False)
    assert {r["pipeline"] for r in result.records} == {"quantize(rounding=gptq)",
                                                        "quantize(bits=4, rounding=gptq)"}
    assert result.summary["trials"]["complete"] < 30


def test_steps_that_fine_tune_are_cached() -> None:
    from occamtune.compress import LowRankConfig, PruneConfig, QuantizeConfig, StructuredPruneConfig
    from occamtune.search.trial import is_cached, is_trained

    assert is_trained(StructuredPruneConfig()) and is_trained(LowRankConfig())
    assert is_trained(PruneConfig(sparsity=0.5, gradual=True)) and is_trained(PruneConfig(sparsity=0.5))
    assert not is_trained(QuantizeConfig(bits=4)) and not is_cached(QuantizeConfig(bits=4))
    # pruned and refit without recovery: nothing for the schedule to plan, but still cached
    no_recovery = StructuredPruneConfig(ffn=0.5, epochs=0)
    assert not is_trained(no_recovery) and is_cached(no_recovery)


def test_a_pipeline_another_worker_is_measuring_is_waited_for_not_redone() -> None:
    import threading

    from occamtune.search.shrink import _duplicate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize", "minimize"])
    first, second = study.ask(), study.ask()
    first.set_user_attr("pipeline", "quantize(bits=4)")  # measuring, as another worker would
    second.set_user_attr("pipeline", "quantize(bits=4)")
    found: list = []
    waiter = threading.Thread(target=lambda: found.append(_duplicate(second, "quantize(bits=4)", 0.01)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not found  # still waiting for the first trial
    for key, value in {"bytes": 10, "dev_metric": 90.0, "latency_ms": 1.0}.items():
        first.set_user_attr(key, value)
    study.tell(first, [10, 90.0, 1.0])
    waiter.join(5)
    assert found and found[0]["bytes"] == 10 and second.user_attrs["duplicate_of"] == first.number


def test_a_pipeline_pruned_before_is_pruned_again() -> None:
    from occamtune.search.shrink import _duplicate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize", "minimize"])
    first = study.ask()
    first.set_user_attr("pipeline", "quantize(bits=2)")
    study.tell(first, state=optuna.trial.TrialState.PRUNED)
    with pytest.raises(optuna.TrialPruned, match="same pipeline as trial 0"):
        _duplicate(study.ask(), "quantize(bits=2)", 0.01)
    assert _duplicate(study.ask(), "quantize(bits=8)", 0.01) is None


def test_a_time_budget_does_not_start_a_trial_that_would_end_after_it(tmp_path, monkeypatch) -> None:
    """Optuna's timeout only stops starting trials; the search also stops when the median trial
    so far would not end within the budget, so the last trial does not overrun it."""
    import importlib
    from types import SimpleNamespace

    shrink_module = importlib.import_module("occamtune.search.shrink")
    clock = [100.0]
    monkeypatch.setattr(shrink_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    def objective(trial):  # each trial takes 30 s on the search's clock (Optuna's own: far less)
        clock[0] += 30.0
        return 1.0, 1.0, 1.0

    study = optuna.create_study(directions=shrink_module.DIRECTIONS)
    shrink_module._optimize(study, objective, None, 200.0, Measure(), SimpleNamespace(metric="f1"),
                            tmp_path, False)
    assert len(study.trials) == 6  # the 6th ends at 180 s; a 7th would end at 210 s


def _done(study, number_bytes: int, drop: float, params: dict) -> None:
    from optuna.distributions import CategoricalDistribution

    dists = {k: CategoricalDistribution([v]) for k, v in params.items()}
    attrs = {"pipeline": f"p{len(study.trials)}", "bytes": number_bytes, "dev_metric": 90.0 - drop,
             "dev_drop": drop, "latency_ms": 1.0}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                              values=[number_bytes, 90.0 - drop, 1.0], user_attrs=attrs))


def test_a_queued_retry_as_long_as_the_last_one_is_not_started_past_the_budget(tmp_path, monkeypatch) -> None:
    """A QAT retry takes ten times a sampled trial: the stop rule expects the longest of its kind
    (from any worker), not the median of the sampled trials."""
    import datetime
    import importlib
    from types import SimpleNamespace

    from optuna.distributions import CategoricalDistribution

    shrink_module = importlib.import_module("occamtune.search.shrink")
    clock = [100.0]
    monkeypatch.setattr(shrink_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    study = optuna.create_study(directions=shrink_module.DIRECTIONS)
    t0 = datetime.datetime(2026, 1, 1)
    study.add_trial(optuna.trial.FrozenTrial(  # a retry another worker ran: 600 s
        number=0, state=optuna.trial.TrialState.COMPLETE, value=None, values=[1, 1, 1],
        datetime_start=t0, datetime_complete=t0 + datetime.timedelta(seconds=600),
        params={"bits": 4}, distributions={"bits": CategoricalDistribution([4, 8])},
        user_attrs={"queued": "retry"}, system_attrs={}, intermediate_values={}, trial_id=0))

    def objective(trial):
        clock[0] += 30.0
        return 1.0, 1.0, 1.0

    def plan():
        if len(study.trials) == 2:
            study.enqueue_trial({"bits": 8}, user_attrs={"queued": "retry"})

    shrink_module._optimize(study, objective, None, 300.0, Measure(), SimpleNamespace(metric="f1"),
                            tmp_path, False, plan=plan)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "WAITING"]  # 30 s in, a 600 s retry would end past 300 s


def _trial(state: str, seconds: float = 0.0, **attrs):
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    start = datetime(2026, 1, 1)
    return SimpleNamespace(state=SimpleNamespace(name=state), user_attrs=attrs,
                           datetime_start=start if state != "WAITING" else None,
                           datetime_complete=start + timedelta(seconds=seconds) if state == "COMPLETE" else None)


def test_the_stop_rule_expects_a_trial_by_its_kind() -> None:
    from occamtune.search.shrink import _expected_seconds

    done = [_trial("COMPLETE", 600, queued="train"), _trial("COMPLETE", 60),
            _trial("COMPLETE", 800, queued="retry"), _trial("COMPLETE", 1, duplicate_of=1)]
    here = {"train": [600.0], "sampled": [60.0]}
    # a retry: as long as the longest retry, in any worker
    assert _expected_seconds(done + [_trial("WAITING", queued="retry")], here) == 800
    # a first cached pipeline (it trains nothing): as the longest sampled one, not the training
    assert _expected_seconds(done + [_trial("WAITING", queued="cached")], here) == 60
    # once cached ones have ended: the longest of them
    ended = done + [_trial("COMPLETE", 90, queued="cached"), _trial("WAITING", queued="cached")]
    assert _expected_seconds(ended, here) == 90
    # a first kind never seen that trains: the longest trial here
    assert _expected_seconds([_trial("WAITING", queued="train")], here) == 600
    # nothing queued: the median of this worker's sampled trials
    assert _expected_seconds(done, {"sampled": [10.0, 30.0, 500.0]}) == 30


def test_two_finalizers_of_one_output_take_turns(tmp_path, tiny_run) -> None:
    import threading
    import time

    from filelock import FileLock

    from occamtune.search.shrink import FINALIZE_LOCK

    out = tmp_path / "shrink"
    first = shrink(tiny_run, out, max_drop=100.0, budget_trials=1, space=SPACE, progress=False)
    (out / "shrink.json").unlink()
    results = []
    with FileLock(str(out / FINALIZE_LOCK)):  # another process finalizing the same output
        second = threading.Thread(target=lambda: results.append(shrink(
            tiny_run, out, max_drop=100.0, budget_seconds=0.0, space=SPACE, progress=False)))
        second.start()
        time.sleep(15)
        assert second.is_alive() and not (out / "shrink.json").exists()
    second.join(timeout=120)
    assert results[0].summary["chosen_trial"] == first.summary["chosen_trial"]
    assert (out / "shrink.json").is_file()


def test_measure_refuses_unknown_objectives_runtimes_and_latency_limits() -> None:

    with pytest.raises(ConfigError, match="--objective must be one of size, latency, both"):
        Measure(objective="speed")
    with pytest.raises(ConfigError, match="--runtime must be one of torch, onnx, onnx-int8"):
        Measure(runtime="tflite")
    with pytest.raises(ConfigError, match="--max-latency-ms must be a positive"):
        Measure(max_latency_ms=0.0)
    with pytest.raises(ConfigError, match="--retry-factor must be at least 1"):
        Measure(retry_factor=0.5)


def test_the_cli_hands_the_retry_factor_to_the_search(monkeypatch, capsys) -> None:
    import occamtune.api
    from occamtune.cli import main

    seen = {}

    def fake(run, output, **options):
        seen.update(options)
        raise ConfigError("stop here")

    monkeypatch.setattr(occamtune.api, "shrink", fake)
    main(["shrink", "run", "--output", "out", "--retry-factor", "2.5", "--trials", "1"])
    assert seen["measure"].retry_factor == 2.5
    main(["shrink", "run", "--output", "out", "--trials", "1"])
    assert seen["measure"].retry_factor == Measure().retry_factor
    assert "stop here" in capsys.readouterr().err


@pytest.mark.slow  # several seconds: two trials, each exported to ONNX and measured there
@pytest.mark.parametrize("runtime,int4", [(None, "int4"), ("onnx-int8", "int4-int8")])
def test_a_latency_search_measures_and_ships_the_onnx_export(tmp_path, tiny_run, runtime,
                                                              int4) -> None:
    """The default runtime of a latency search is "onnx" (`export --weights auto`);
    "onnx-int8" exports 4-bit codes to run on the int8 kernels (`--weights auto-int8`)."""
    from occamtune import inference
    from occamtune.export import OnnxTaskModel
    from occamtune.models import load_model

    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False,), bits=(8, 4))
    out = tmp_path / "fast"
    result = shrink(tiny_run, out, max_drop=100.0, budget_trials=2, space=space, progress=False,
                    objective="both", runtime=runtime)
    records = {r["pipeline"]: r for r in result.records}
    assert set(records) == {"quantize(rounding=gptq)", "quantize(bits=4, rounding=gptq)"}
    for pipeline, weights in (("quantize(rounding=gptq)", "int8"),
                              ("quantize(bits=4, rounding=gptq)", int4)):
        r = records[pipeline]
        onnx = tmp_path / r["deployed"] / "model.onnx"
        # the bytes, metric and latency are the ONNX file's, not the artifact's
        assert r["weights"] == weights and r["bytes"] == onnx.stat().st_size
        assert r["artifact_bytes"] == (tmp_path / r["artifact"] / "model.occ").stat().st_size
        assert r["latency_ms"] > 0
    best = min(result.records, key=lambda r: r["bytes"] * r["latency_ms"])
    s = result.summary
    assert s["runtime"] == (runtime or "onnx") and s["objective"] == "both"
    assert s["chosen_trial"] == best["trial"] and s["chosen_bytes"] == best["bytes"]
    assert s["chosen_artifact_bytes"] == best["artifact_bytes"]
    shipped, _, _ = load_model(out / "chosen-onnx")
    assert isinstance(shipped, OnnxTaskModel)
    assert inference.evaluate(shipped, *_dev(tiny_run, load_model(tiny_run)[0]))["f1"] == \
        pytest.approx(s["chosen_dev_metric"])
    assert (out / "chosen" / "model.occ").is_file()  # the artifact it was exported from
    with pytest.raises(ConfigError, match="--runtime"):  # measured on another runtime: refused
        shrink(tiny_run, out, max_drop=100.0, budget_trials=1, space=space, progress=False,
               runtime="torch")


def test_a_latency_limit_no_candidate_meets_chooses_nothing_and_says_so(tmp_path, tiny_run) -> None:
    from occamtune.cli.search import no_choice_hint

    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False,), bits=(8,))
    result = shrink(tiny_run, tmp_path / "s", max_drop=100.0, budget_trials=1, space=space,
                    progress=False, max_latency_ms=1e-6, runtime="torch")
    assert result.summary["trials"]["complete"] == 1 and result.chosen is None
    hint = no_choice_hint(result.summary, 100.0)
    assert "at most 1e-06 ms per sentence" in hint and "--max-latency-ms" in hint


def test_a_failing_trial_is_recorded_with_its_reason_and_named_by_the_hint(tmp_path, tiny_run,
                                                                          monkeypatch) -> None:
    """A search whose trials fail says which pipeline failed and why, in shrink.json and in the
    hint, rather than only that nothing stayed within the tolerance."""
    import importlib

    from occamtune.cli.search import no_choice_hint

    shrink_module = importlib.import_module("occamtune.search.shrink")

    def broken(*args, **kwargs):
        raise ValueError("the 4-bit kernel needs in_features divisible by 32")

    monkeypatch.setattr(shrink_module, "run_candidate", broken)
    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(False,), bits=(4,))
    result = shrink(tiny_run, tmp_path / "s", max_drop=100.0, budget_trials=1, space=space,
                    progress=False)
    assert result.chosen is None and result.summary["trials"]["failed"] == 1
    (failure,) = result.summary["failures"]
    assert failure["pipeline"].startswith("quantize(bits=4") and "divisible by 32" in failure["reason"]
    saved = json.loads((tmp_path / "s" / "shrink.json").read_text())
    assert saved["failures"] == result.summary["failures"]
    hint = no_choice_hint(result.summary, 100.0)
    assert hint.startswith("shrink: 1 trial(s) failed") and "divisible by 32" in hint
    assert "quantize(bits=4" in hint and "--budget" in hint


def test_a_proposal_of_a_measured_pipeline_does_not_use_up_the_trials(tmp_path) -> None:
    """A sampled pipeline measured before is reused at no cost: it does not count toward the
    trial budget, but a long run of them (nothing new left to propose) ends the search."""
    from types import SimpleNamespace

    from occamtune.search.shrink import MAX_DUPLICATES, _optimize

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def every_other_repeats(trial):
        if trial.number % 2:
            trial.set_user_attr("duplicate_of", trial.number - 1)
        return 1.0, 1.0, 1.0

    study = optuna.create_study(directions=["minimize", "maximize", "minimize"])
    _optimize(study, every_other_repeats, 3, None, Measure(), SimpleNamespace(metric="f1"),
              tmp_path, False)
    assert len(study.trials) == 5  # 3 measured, 2 reused between them

    def always_repeats(trial):
        trial.set_user_attr("duplicate_of", 0)
        return 1.0, 1.0, 1.0

    study = optuna.create_study(directions=["minimize", "maximize", "minimize"])
    _optimize(study, always_repeats, 3, None, Measure(), SimpleNamespace(metric="f1"), tmp_path,
              False)
    assert len(study.trials) == MAX_DUPLICATES
