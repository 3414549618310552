"""One candidate: trained students are cached by pipeline prefix and reused."""

from __future__ import annotations

from occamtune.search.trial import Measure, compress_cached, load_teacher


def test_distilled_student_is_trained_once(tmp_path, tiny_run, monkeypatch) -> None:
    import importlib

    oc = importlib.import_module("occamtune.compress")

    teacher = load_teacher(tiny_run)
    calls: list[str] = []
    real = oc.compress

    def counting(model, configs, ctx):
        calls.extend(type(c).__name__ for c in configs)
        return real(model, configs, ctx)

    monkeypatch.setattr(oc, "compress", counting)
    first = [oc.DistillConfig(layers=1), oc.QuantizeConfig(bits=8)]
    second = [oc.DistillConfig(layers=1), oc.PruneConfig(sparsity=0.5), oc.QuantizeConfig(bits=4)]
    a = compress_cached(teacher, first, tmp_path / "cache")
    b = compress_cached(teacher, second, tmp_path / "cache")
    assert calls.count("DistillConfig") == 1, calls
    assert a.encoder.config.num_hidden_layers == b.encoder.config.num_hidden_layers == 1
    assert teacher.model.encoder.config.num_hidden_layers == 2  # the teacher is never modified


def test_measure_defaults() -> None:
    assert Measure().prune_factor * Measure().max_drop == 3.0


def test_cache_keys_hold_every_field_and_read_numbers_alike() -> None:
    from types import SimpleNamespace

    from occamtune.compress import parse_pipeline
    from occamtune.search.trial import prefix_key

    teacher = SimpleNamespace(identity="t")
    key = lambda text: prefix_key(teacher, parse_pipeline(text))
    assert key("structured(heads=0, ffn=0.5)") == key("structured(heads=0.0, ffn=0.5)")
    assert key("structured(ffn=0.5)") != key("structured(ffn=0.5, refit=false)")
