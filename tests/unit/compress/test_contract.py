"""Every registered method on a tiny model: shapes kept, something shrinks, configs round-trip,
the artifact reloads to the same outputs."""

from __future__ import annotations

import copy

import pytest
import torch

from occamtune.compress import (
    METHODS,
    CodebookConfig,
    DistillConfig,
    FeatureExtractConfig,
    LoraConfig,
    LowRankConfig,
    PruneConfig,
    QuantizeConfig,
    ShareConfig,
    StructuredPruneConfig,
    VocabTrimConfig,
    artifact_bytes,
    compress,
    format_pipeline,
    load_artifact,
    parse_pipeline,
    pipeline_from_yaml,
    pipeline_to_yaml,
    save_artifact,
)
from occamtune.compress.record import record_of
from tests.fixtures.tiny_models import tiny_batches, tiny_context, tiny_task_model

CASES = {
    "quantize": QuantizeConfig(bits=4, group_size=16),
    "distill": DistillConfig(layers=1),
    "prune": PruneConfig(sparsity=0.6),
    "structured": StructuredPruneConfig(heads=0.5, ffn=0.5),
    "vocab": VocabTrimConfig(),
    "codebook": CodebookConfig(size=16),
    "lowrank": LowRankConfig(energy=0.5, min_rank=2),
    "feature": FeatureExtractConfig(last_k=2),
    "lora": LoraConfig(r=2, targets=("query", "value")),
    "share": ShareConfig(groups=1),
}
TRAINABLE_ONLY = {"feature", "lora"}  # these shrink what is trained, not the model


def test_every_method_has_a_case() -> None:
    assert set(CASES) == set(METHODS), f"add a contract case for {set(METHODS) ^ set(CASES)}"


def _logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch)


@pytest.mark.parametrize("method", sorted(CASES))
def test_contract(method: str, tokenizer, tmp_path) -> None:
    config = CASES[method]
    model = tiny_task_model()
    batch = tiny_batches(n=1, seed=5)[0]
    before = _logits(model, batch)
    base = save_artifact(copy.deepcopy(model), tokenizer, tmp_path / "base")["model_occ"]

    small = compress(model, [config], tiny_context())
    after = _logits(small, batch)
    assert after.shape == before.shape, f"{method}: logits {tuple(after.shape)} != {tuple(before.shape)}"
    sizes = save_artifact(small, tokenizer, tmp_path / "small", meta={"fp32_bytes": 4 * 10**5})
    step = record_of(small).log()[-1]
    if method in TRAINABLE_ONLY:
        assert step["trainable"] < step["params_before"], step
    else:
        assert step["params_after"] < step["params_before"] or sizes["model_occ"] < base, (step, sizes)

    assert pipeline_from_yaml(pipeline_to_yaml([config])) == [config]
    assert parse_pipeline(format_pipeline([config])) == [config]

    loaded = load_artifact(tmp_path / "small")
    assert artifact_bytes(tmp_path / "small") == sizes["model_occ"]
    exact = method == "quantize"  # every stored matrix is its codes: no fp16 rounding
    torch.testing.assert_close(_logits(loaded, batch), after, atol=1e-5 if exact else 2e-3,
                               rtol=1e-5 if exact else 2e-3)
