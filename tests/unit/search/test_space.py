"""The search space: validation, restriction, and pipelines in the fixed order."""

from __future__ import annotations

import optuna
import pytest

from occamtune.errors import ConfigError
from occamtune.search.space import SearchSpace, build_pipeline, parse_space, suggest, suggest_params


def test_space_validates_its_fields() -> None:
    with pytest.raises(ConfigError, match="'sparsity'.*1.5"):
        SearchSpace(sparsity=(0.0, 1.5))
    with pytest.raises(ConfigError, match="'bits' needs at least one value"):
        SearchSpace(bits=())


def test_for_teacher_keeps_only_smaller_students() -> None:
    assert SearchSpace(distill_layers=(0, 4, 3, 2)).for_teacher(3).distill_layers == (0, 2)
    assert SearchSpace(distill_layers=(4,)).for_teacher(2).distill_layers == (0,)


def test_parse_space_from_flags() -> None:
    space = parse_space(["bits=4,3", "vocab_trim=false", "group_size=32", "vocab_rank=16",
                         "quant_epochs=0.5", "rounding=nearest"])
    assert space.bits == (4, 3) and space.vocab_trim == (False,) and space.group_size == 32
    assert space.vocab_rank == (16,) and space.quant_epochs == (0.5,) and space.rounding == "nearest"
    assert parse_space(["sparsity=0,5e-1"]).sparsity == (0, 0.5)
    assert parse_space(["codebook_fallback_dim=4"]).codebook_fallback_dim == 4
    assert parse_space(["qat_rounding=gptq"]).qat_rounding == "gptq"
    with pytest.raises(ConfigError, match="qat_rounding must be one of nearest, gptq"):
        parse_space(["qat_rounding=stochastic"])
    with pytest.raises(ConfigError, match="codebook_fallback_dim must be >= 0"):
        parse_space(["codebook_fallback_dim=-1"])
    with pytest.raises(ConfigError, match="FIELD=v1,v2"):
        parse_space(["colour=red"])
    with pytest.raises(ConfigError, match="rounding must be one of nearest, gptq"):
        parse_space(["rounding=floor"])


def test_size_counts_lowrank_only_without_sparsity() -> None:
    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0, 0.5), lowrank_energy=(0.0, 0.9),
                        vocab_trim=(False,), bits=(8,), codebook=(False,))
    assert space.size() == 3  # dense, dense+lowrank, sparse


def test_pipeline_order_and_skipped_steps() -> None:
    params = {"distill_layers": 3, "heads": 0.0, "ffn": 0.25, "sparsity": 0.8, "lowrank_energy": 0.0,
              "vocab_trim": True, "codebook": True, "bits": 4}
    names = [type(c).__name__ for c in build_pipeline(params, SearchSpace())]
    assert names == ["DistillConfig", "StructuredPruneConfig", "PruneConfig", "VocabTrimConfig",
                     "CodebookConfig", "QuantizeConfig"]
    steps = build_pipeline({**params, "vocab_rank": 16}, SearchSpace(quant_epochs=1.0))
    assert steps[-3].rank == 16 and steps[-1].epochs == 1.0  # the choices reach the steps
    assert steps[-1].rounding == "nearest"  # after QAT: the space's qat_rounding
    assert build_pipeline(params, SearchSpace())[-1].rounding == "gptq"  # without: its rounding
    assert build_pipeline(params, SearchSpace(quant_epochs=1.0,
                                              qat_rounding="gptq"))[-1].rounding == "gptq"
    assert steps[-2].fallback_dim == 8  # rank 16: its codes coded in sub-vectors of 8
    assert build_pipeline({**params, "vocab_rank": 12}, SearchSpace())[-2].fallback_dim == 0
    assert build_pipeline({**params, "vocab_trim": False}, SearchSpace())[-2].fallback_dim == 0
    assert build_pipeline({**params, "vocab_rank": 16},
                          SearchSpace(codebook_fallback_dim=0))[-2].fallback_dim == 0
    assert SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                       vocab_trim=(False, True), vocab_rank=(32, 64), bits=(4,)).size() == 6
    none = {"distill_layers": 0, "heads": 0.0, "ffn": 0.0, "sparsity": 0.0, "lowrank_energy": 0.0,
            "vocab_trim": False, "bits": 32}
    assert build_pipeline(none, SearchSpace(bits=(32,))) == []


def test_suggest_with_an_optuna_trial() -> None:
    trial = optuna.trial.FixedTrial({"distill_layers": 0, "heads": 0.0, "ffn": 0.0, "sparsity": 0.0,
                                     "lowrank_energy": 0.9, "vocab_trim": False, "codebook": False,
                                     "bits": 8})
    names = [type(c).__name__ for c in suggest(trial, SearchSpace())]
    assert names == ["LowRankConfig", "QuantizeConfig"]
    sparse = optuna.trial.FixedTrial({"distill_layers": 0, "heads": 0.0, "ffn": 0.0, "sparsity": 0.5,
                                      "vocab_trim": False, "codebook": True, "bits": 8})
    assert suggest_params(sparse, SearchSpace())["lowrank_energy"] == 0.0
