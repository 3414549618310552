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
    with pytest.raises(ConfigError, match="codebook_centroid_bits must be 0 or 2 to 8"):
        parse_space(["codebook_centroid_bits=12"])
    with pytest.raises(ConfigError, match="FIELD=v1,v2"):
        parse_space(["colour=red"])
    with pytest.raises(ConfigError, match="rounding must be one of nearest, gptq"):
        parse_space(["rounding=floor"])
    with pytest.raises(ConfigError, match=r"ffn_bits must be 0 or an integer in \[2, 8\]"):
        parse_space(["ffn_bits=1"])
    with pytest.raises(ConfigError, match="ffn_bits is one setting of every candidate"):
        parse_space(["ffn_bits=3,2"])  # not silently the first of them
    with pytest.raises(ConfigError, match=r"embedding_bits must be 0 or an integer in \[2, 8\]"):
        parse_space(["embedding_bits=9"])


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
    assert steps[-1].ffn_bits is None  # ffn_bits 0: the feed-forward Linears take `bits`
    assert build_pipeline(params, parse_space(["ffn_bits=3"]))[-1].ffn_bits == 3
    assert steps[-1].embedding_bits is None  # embedding_bits 0: the embeddings take `bits`
    assert build_pipeline(params, parse_space(["embedding_bits=8"]))[-1].embedding_bits == 8
    assert build_pipeline({**params, "vocab_rank": 12}, SearchSpace())[-2].fallback_dim == 0
    assert build_pipeline({**params, "vocab_trim": False}, SearchSpace())[-2].fallback_dim == 0
    assert build_pipeline({**params, "vocab_rank": 16},
                          SearchSpace(codebook_fallback_dim=0))[-2].fallback_dim == 0
    assert steps[-2].centroid_bits is None  # codebook_centroid_bits 0: fp16 centroids
    assert build_pipeline(params, parse_space(["codebook_centroid_bits=8"]))[-2].centroid_bits == 8
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


@pytest.fixture
def toy_method():
    """A compression method the search has never heard of, with a search dimension of its own:
    registered here only (no other module edited), unregistered afterwards."""
    from dataclasses import dataclass
    from typing import ClassVar

    import torch

    from occamtune.compress import CompressionConfig, SearchDim, StepRecord, register
    from occamtune.compress.base import HANDLERS, METHODS

    @dataclass(frozen=True)
    class ToyConfig(CompressionConfig):
        """Scale the task head's weights (a stand-in for a real method)."""

        name: ClassVar[str] = "toy"
        search_order: ClassVar[int] = 65  # after the codebook, before quantization
        level_rank: ClassVar[int] = 5  # compared last in "most compressed first"
        search_dims: ClassVar[tuple] = (
            SearchDim("toy_scale", (1.0, 0.5), ok=lambda v: 0.0 < v <= 1.0,
                      doc="scale of the head; 1 skips the step"),
            SearchDim("toy_note", "x", doc="a fixed setting of the step"),
        )
        scale: float = 1.0
        note: str = "x"

        @classmethod
        def from_point(cls, point, space):
            scale = point.get("toy_scale", 1.0)
            return cls(scale=scale, note=space.toy_note) if scale != 1.0 else None

        @classmethod
        def level(cls, point) -> float:
            return -point.get("toy_scale", 1.0)

    def toy(model, config, ctx):
        with torch.no_grad():
            for p in model.head.parameters():
                p.mul_(config.scale)
        return model, StepRecord(facts={"scaled": config.scale})

    register(ToyConfig)(toy)
    try:
        yield ToyConfig
    finally:
        del HANDLERS[ToyConfig], METHODS[ToyConfig.name]


def test_a_registered_method_brings_its_own_search_dimensions(toy_method) -> None:
    from occamtune.compress import compress, format_pipeline
    from occamtune.compress.record import record_of
    from occamtune.search.schedule import compressed_first, space_points
    from tests.fixtures.tiny_models import tiny_task_model

    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        vocab_trim=(False,), codebook=(True,), bits=(4,), toy_note="y")
    assert space.toy_scale == (1.0, 0.5) and space.size() == 2
    assert parse_space(["toy_scale=0.5,0.25"]).toy_scale == (0.5, 0.25)
    with pytest.raises(ConfigError, match="'toy_scale' has values out of range: \\[2.0\\]"):
        SearchSpace(toy_scale=(2.0,))
    points = space_points(space)
    assert [p["toy_scale"] for p in points] == [1.0, 0.5]
    assert compressed_first(points[1]) < compressed_first(points[0])  # scaled further: first
    steps = build_pipeline(points[1], space)
    assert format_pipeline(steps) == "codebook, toy(scale=0.5, note=y), quantize(bits=4, rounding=gptq)"
    assert [type(c).__name__ for c in build_pipeline(points[0], space)] == ["CodebookConfig",
                                                                           "QuantizeConfig"]
    trial = optuna.trial.FixedTrial(points[1])
    assert suggest_params(trial, space)["toy_scale"] == 0.5
    model = compress(tiny_task_model(), [toy_method(scale=0.5)])
    assert record_of(model).log()[-1]["scaled"] == 0.5


def test_the_toy_method_is_gone_afterwards() -> None:
    assert not hasattr(SearchSpace(), "toy_scale")
