"""What the ONNX decoding steps (a decoder's, `onnx_generate`; an encoder-decoder's,
`onnx_seq2seq`) share: the names of their cache tensors and the cache they fill."""

from __future__ import annotations

from typing import Any


def new_cache() -> Any:
    """A cache that keeps every position in every layer. Not the config's own cache, which keeps
    only the last window of a sliding-window layer (Gemma 3, Mistral): the step's new entries
    are then the last ones of each layer, and every layer's past has the attention mask's
    length; the mask itself still applies the window."""
    from transformers import DynamicCache

    return DynamicCache()


def cache_names(kind: str, layers: int) -> list[str]:
    """The graph's names of every layer's keys and values: `kind` "past" (inputs) or "present"
    (outputs)."""
    return [f"{kind}.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
