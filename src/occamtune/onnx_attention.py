"""The attention an ONNX export traces: transformers' eager attention, grouped where keys are shared.

Traced, the default `scaled_dot_product_attention` becomes its decomposition, which guards every
softmax with `Where(IsNaN(p), 0, p)`: one more pass over the whole (batch, heads, rows, keys)
tensor in every layer, which grows with the square of a source's length
(`benchmarks/generation_speed.py --profile` shows where the time goes). Eager attention computes
the same scores with an additive mask.

A model with grouped-query attention (Llama-style: several query heads read one key/value head)
has, in eager attention, `repeat_kv`: an `Expand` that copies the whole key/value cache once per
query head of a group, in every layer at every decoding step. `grouped_attention` computes the same
scores without the copy: the query heads of a group become rows of one matrix product with their
shared keys. transformers has no such implementation of its own (its SDPA path asks torch for
`enable_gqa`, which the ONNX trace decomposes into the same repeat), so it is written here and
registered under transformers' `AttentionInterface` for the time of an export.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

GROUPED = "occamtune_grouped"
# keyword arguments a family passes to its attention that the grouped product does not apply
# (Gemma 2's score soft-capping, gpt-oss's attention sinks): such a layer keeps its own eager
# attention
UNSUPPORTED = ("softcap", "s_aux", "sinks")


def grouped_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float,
                      dropout: float = 0.0, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager attention with the key/value heads shared by `module.num_key_value_groups`
    query heads each, without repeating them: query (batch, heads, rows, dim), key and value
    (batch, kv heads, keys, dim), mask additive (batch, 1, rows, keys); returns the output
    (batch, rows, heads, dim) and the probabilities, as eager attention does."""
    groups = int(getattr(module, "num_key_value_groups", 1))
    if groups == 1 or module.training or any(kwargs.get(k) is not None for k in UNSUPPORTED):
        own = sys.modules[type(module).__module__].eager_attention_forward
        return own(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                   **kwargs)
    b, h, t, d = query.shape
    kv_heads, s = key.shape[1], key.shape[2]
    # query head i reads key/value head i // groups (repeat_kv's order): a group's heads are
    # consecutive, so a reshape lines their rows up under their key/value head
    scores = torch.matmul(query.reshape(b, kv_heads, groups * t, d), key.transpose(2, 3)) * scaling
    scores = scores.view(b, kv_heads, groups, t, s)
    if attention_mask is not None:
        scores = scores + attention_mask.unsqueeze(2)
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.matmul(probs.view(b, kv_heads, groups * t, s), value)
    return out.view(b, h, t, d).transpose(1, 2).contiguous(), probs.view(b, h, t, s)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED, grouped_attention)
    AttentionMaskInterface.register(GROUPED, eager_mask)  # the additive mask eager attention takes


def has_grouped_heads(model: nn.Module) -> bool:
    """Whether some attention layer of the model shares key/value heads between query heads."""
    return any(int(getattr(m, "num_key_value_groups", 1) or 1) > 1 for m in model.modules())


@contextlib.contextmanager
def traced_attention(model: nn.Module) -> Iterator[None]:
    """Trace the model (a TaskModel: its `encoder` is the transformers model) with eager
    attention, grouped where it has grouped-query heads; the implementation it had is restored
    after. A model whose attention is not one of transformers' switchable implementations is
    traced as it is."""
    hf = getattr(model, "encoder", None)
    before = (getattr(hf.config, "_attn_implementation", None)
              if hasattr(hf, "set_attn_implementation") else None)
    if before is None:
        yield
        return
    wanted = "eager"
    if has_grouped_heads(hf):
        _register()
        wanted = GROUPED
    if wanted == before:
        yield
        return
    hf.set_attn_implementation(wanted)
    try:
        yield
    finally:
        hf.set_attn_implementation(before)
