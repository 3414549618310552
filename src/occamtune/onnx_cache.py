"""What the ONNX decoding steps (a decoder's, `onnx_generate`; an encoder-decoder's,
`onnx_seq2seq`) share: the names of their cache tensors, the cache they fill, the task model
face of a loaded step and the base of the model `generate` drives; and how every exported graph
is opened (`onnx_session`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# transformers at import time: the package imports this module only to export or load a
# generator's ONNX files
from transformers import GenerationMixin, PreTrainedModel

# ONNX Runtime's switch for its intra-op threads' spinning. A decoding step is run once per
# token with Python work in between (`generate`, the cache's concatenation in torch): threads
# left spinning after each run take the cores that work needs, and a second session's threads
# those of the first (`benchmarks/generation_speed.py` read a batch-8 ratio that followed the
# order of two sessions in one process while they spun)
SPINNING = "session.intra_op.allow_spinning"
ZSTD_SUFFIX = ".zst"  # a graph written compressed (`export --codec zstd`)
# what a decoding step returns as its `present.*` outputs: "all", every cached position's keys and
# values (the graph's own concatenation of the past and the new entries, which the loader then
# keeps as the cache), or "new", the new tokens' entries alone (which the loader appended with
# `torch.cat`: a second copy of the whole cache at every token, on fresh memory; exports written
# before format_info said which are of this kind)
PRESENT = "all"


def onnx_session(path: Path, opts: Any) -> Any:
    """An ONNX Runtime CPU session of the graph at `path`. A `.zst` file is decompressed in
    memory and ONNX Runtime reads the model from those bytes: the graph is never written out
    uncompressed."""
    import onnxruntime as ort

    source: str | bytes = str(path)
    if path.suffix == ZSTD_SUFFIX:
        from occamtune.compress.artifact import decompress_bytes

        source = decompress_bytes(path.read_bytes(), "zstd")
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def new_cache() -> Any:
    """A cache that keeps every position in every layer. Not the config's own cache, which keeps
    only the last window of a sliding-window layer (Gemma 3, Mistral): the step's new entries
    are then the last ones of each layer, and every layer's past has the attention mask's
    length; the mask itself still applies the window."""
    from transformers import DynamicCache

    return DynamicCache()


def cache_from(tensors: Sequence[torch.Tensor]) -> Any:
    """A `new_cache` holding these keys and values (key, value, key, ... layer by layer) as
    they are. Its `update` would concatenate each onto an empty tensor, which the tracer writes
    as a `Concat`: a copy of everything cached in every decoding step (an encoder-decoder's
    cross-attention keys and values, a whole source's worth per layer; a decoder's whole past)."""
    return hold(new_cache(), tensors)


def hold(cache: Any, tensors: Sequence[torch.Tensor]) -> Any:
    """`cache` (a `new_cache`) holding these keys and values as its layers' whole contents, in
    place of what it held: no copy."""
    from transformers.cache_utils import DynamicLayer

    for i in range(0, len(tensors), 2):
        if len(cache.layers) <= i // 2:
            cache.layers.append(DynamicLayer())
        layer = cache.layers[i // 2]
        if not layer.is_initialized:
            layer.lazy_initialization(tensors[i], tensors[i + 1])
        layer.keys, layer.values = tensors[i], tensors[i + 1]
    return cache


def cache_outputs(layers: list[Any], t: int, present: str) -> list[torch.Tensor]:
    """A step's `present.*` outputs from its cache's layers after `t` new tokens: every entry
    ("all"), or the new tokens' ("new": the last `t` of each layer)."""
    out: list[torch.Tensor] = []
    for layer in layers:
        out += ([layer.keys, layer.values] if present == "all"
                else [layer.keys[:, :, -t:], layer.values[:, :, -t:]])
    return out


def keep_step(cache: Any, outputs: Sequence[torch.Tensor], present: str) -> Any:
    """`cache` after a step whose `present.*` outputs are `outputs` (of kind `present`, see
    `PRESENT`): held as they are ("all") or appended ("new")."""
    if present == "all":
        return hold(cache, outputs)
    for i in range(len(outputs) // 2):
        cache.update(outputs[2 * i], outputs[2 * i + 1], i)
    return cache


def cache_names(kind: str, layers: int) -> list[str]:
    """The graph's names of every layer's keys and values: `kind` "past" (inputs) or "present"
    (outputs)."""
    return [f"{kind}.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


class OnnxStepModel:
    """A loaded decoding step (`session`) answering like the generate task model: its labels,
    head config, the model's config, the cache's layer count and shapes, the pad id."""

    def __init__(self, session: Any, head_config: Any, config: Any, info: dict[str, Any],
                 pad_id: int = 0) -> None:
        self.session, self.head_config, self.config = session, head_config, config
        self.layers = int(info["layers"])
        self.shapes = [tuple(s) for s in info["cache_shapes"]]
        self.present = str(info.get("present", "new"))  # see PRESENT
        self.pad_id = pad_id

    @property
    def labels(self) -> list[str]:
        return list(self.head_config.labels)

    def eval(self) -> Any:
        return self


class OnnxLM(PreTrainedModel, GenerationMixin):  # type: ignore[misc]
    """The base of what transformers' `generate` drives over a loaded step: on the CPU, in
    float32, with no attention implementation of its own."""

    main_input_name = "input_ids"
    # the attention runs inside the graphs: whichever the config names, this class has none
    _supports_sdpa = _supports_flash_attn = _supports_flex_attn = True
    _supports_attention_backend = True

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32
