"""The interface: registry dispatch, the log, validation, and the pipeline text/YAML forms."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from occamtune.compress import (
    METHODS,
    CompressContext,
    CompressionConfig,
    DistillConfig,
    LoraConfig,
    PruneConfig,
    QuantizeConfig,
    compress,
    format_pipeline,
    parse_pipeline,
    pipeline_from_yaml,
    pipeline_to_yaml,
)
from occamtune.compress.record import record_of
from occamtune.errors import ConfigError
from tests.fixtures.tiny_models import tiny_task_model


def test_parse_pipeline_reads_yaml_scalars() -> None:
    configs = parse_pipeline("distill(layers=3, epochs=null), prune(sparsity=0.8, gradual=true), "
                             "quantize(bits=4), lora(targets=[query, key])")
    assert configs == [DistillConfig(layers=3), PruneConfig(sparsity=0.8, gradual=True),
                       QuantizeConfig(bits=4), LoraConfig(targets=("query", "key"))]
    # YAML 1.1 reads an exponent without a dot as text; a number is meant
    assert parse_pipeline("quantize(epochs=1, lr=1e-4)")[0].lr == pytest.approx(1e-4)
    assert pipeline_from_yaml("- {method: quantize, epochs: 1, lr: 5E-5}")[0].lr == pytest.approx(5e-5)


def test_format_pipeline_shows_changed_fields_and_round_trips() -> None:
    configs = [DistillConfig(layers=2, pick="top"), PruneConfig(), QuantizeConfig(bits=3)]
    text = format_pipeline(configs)
    assert text == "distill(layers=2, pick=top), prune, quantize(bits=3)"
    assert parse_pipeline(text) == configs
    assert pipeline_from_yaml(pipeline_to_yaml(configs)) == configs


def test_every_method_round_trips_with_defaults() -> None:
    configs = [cls() for cls in METHODS.values()]
    assert parse_pipeline(format_pipeline(configs)) == configs
    assert pipeline_from_yaml(pipeline_to_yaml(configs)) == configs


@pytest.mark.parametrize(("text", "needle"), [
    ("squeeze(bits=3)", "choose one of codebook, distill"),
    ("quantize(bit=3)", "valid options: bits, group_size"),
    ("quantize(bits=9)", "bits must be in [2, 8], got 9"),
    ("prune(sparsity=1.0)", "sparsity must be in [0.0, 1.0), got 1.0"),
    ("prune(scope=row)", "scope must be one of global, layer"),
    ("distill(layers=3", "unbalanced"),
    ("prune(0.5)", "must be key=value"),
    ("distill(epochs=-1)", "epochs must be a positive number"),
    ("quantize(epochs=1, lr=fast)", "lr must be in (0.0, 1.0], got 'fast'"),
])
def test_bad_pipelines_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pipeline(text)
    assert needle in str(err.value)


def test_yaml_needs_method_key() -> None:
    with pytest.raises(ConfigError, match="method"):
        pipeline_from_yaml("- bits: 4\n")


def test_unregistered_config_is_rejected() -> None:
    @dataclass(frozen=True)
    class Nope(CompressionConfig):
        name = "nope"

    with pytest.raises(ConfigError, match="no compression method for Nope"):
        compress(tiny_task_model(), [Nope()], CompressContext())


@pytest.mark.parametrize("text", ["distill(layers=1)", "share(groups=1)", "lora", "feature",
                                  "prune(gradual=true)"])
def test_training_methods_need_finetune(text: str) -> None:
    with pytest.raises(ConfigError, match="finetune"):
        compress(tiny_task_model(), parse_pipeline(text), CompressContext())


def test_compress_logs_each_step() -> None:
    model = compress(tiny_task_model(), [PruneConfig(sparsity=0.5), QuantizeConfig(bits=8)],
                     CompressContext())
    log = record_of(model).log()
    assert [s["config"]["method"] for s in log] == ["prune", "quantize"]
    assert log[0]["config"] == {"method": "prune", "sparsity": 0.5, "scope": "global",
                                "gradual": False, "epochs": None}
    assert log[0]["params_before"] == log[0]["params_after"] > 0
    assert log[0]["sparsity"] == pytest.approx(0.5, abs=0.01)
