"""The attention an export traces: grouped heads give eager attention's outputs, and the model's
own implementation comes back after the export."""

from __future__ import annotations

import pytest
import torch

from occamtune.onnx_attention import GROUPED, has_grouped_heads, traced_attention


class _Task(torch.nn.Module):
    """What `traced_attention` reads of a task model: its transformers model as `encoder`."""

    def __init__(self, hf: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = hf


def _llama(kv_heads: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                         num_key_value_heads=kv_heads, intermediate_size=64,
                         attn_implementation="sdpa")
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("kv_heads", [1, 2, 3])
def test_grouped_heads_give_the_eager_scores_and_the_implementation_comes_back(kv_heads) -> None:
    hf = _llama(kv_heads)
    ids = torch.randint(0, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding
    mask[1, :1] = 0
    hf.set_attn_implementation("eager")
    expected = hf(input_ids=ids, attention_mask=mask).logits
    hf.set_attn_implementation("sdpa")
    with traced_attention(_Task(hf)):
        assert hf.config._attn_implementation == GROUPED
        got = hf(input_ids=ids, attention_mask=mask).logits
    assert hf.config._attn_implementation == "sdpa"
    assert has_grouped_heads(hf)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_model_without_grouped_heads_is_traced_with_eager_attention() -> None:
    hf = _llama(6)
    assert not has_grouped_heads(hf)
    with traced_attention(_Task(hf)):
        assert hf.config._attn_implementation == "eager"
    assert hf.config._attn_implementation == "sdpa"
