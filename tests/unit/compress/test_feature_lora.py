"""Feature extraction trains only the head (+ mix); LoRA trains adapters then merges them."""

from __future__ import annotations

import copy

import torch

from occamtune.compress import FeatureExtractConfig, LoraConfig, compress
from occamtune.compress.record import record_of
from tests.fixtures.tiny_models import tiny_batches, tiny_context, tiny_task_model


def test_feature_extraction_freezes_the_encoder() -> None:
    model = tiny_task_model()
    enc_before = copy.deepcopy(model.encoder.state_dict())
    head_before = copy.deepcopy(model.head.state_dict())
    model = compress(model, [FeatureExtractConfig(last_k=2, epochs=2)], tiny_context())
    for k, v in enc_before.items():
        assert torch.equal(model.encoder.state_dict()[k], v), k
    assert not torch.equal(model.head.out.weight, head_before["out.weight"])
    assert model.encoder.scalar_mix.weights.shape == (2,)
    assert model.encoder.scalar_mix.weights.abs().sum() > 0, "the mix weights trained"
    step = record_of(model).log()[-1]
    assert step["trainable"] == sum(p.numel() for p in model.head.parameters()) + 3


def test_lora_trains_then_merges_into_a_plain_encoder() -> None:
    model = tiny_task_model()
    q_before = model.encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    k_before = model.encoder.encoder.layer[0].attention.self.key.weight.detach().clone()
    model = compress(model, [LoraConfig(r=2, dropout=0.0, epochs=3)], tiny_context())
    assert type(model.encoder).__name__ == "BertModel"
    assert not any("lora" in n for n, _ in model.named_parameters())
    att = model.encoder.encoder.layer[0].attention.self
    assert not torch.equal(att.query.weight, q_before), "the merged update changed query"
    assert torch.equal(att.key.weight, k_before), "key was not a target"
    step = record_of(model).log()[-1]
    assert step["trainable"] < step["params_before"] / 5
    assert model(**tiny_batches(n=1)[0]).shape == (4, 12, 5)
