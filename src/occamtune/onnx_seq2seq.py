"""ONNX export of an encoder-decoder generator (T5, BART, a warm-started `EncoderDecoderModel`)
and the model that runs it in ONNX Runtime under transformers' `generate`.

Two graphs, as Optimum writes them: the encoder (source -> its hidden states, run once per
source) and a decoding step (new target tokens, the source's hidden states and mask, and the
decoder's cached self-attention keys and values -> the logits and the new tokens' keys and
values). The Python side keeps the cache (transformers' `EncoderDecoderCache`), so greedy and
beam search, the repetition controls and streaming are `generate`'s own, as on the torch model.

The step recomputes the cross-attention's keys and values from the source's hidden states at
every call: caching them too would need each family's cross-attention projections outside its
own forward (one graph's inputs cannot say "computed at the first step only"). What that costs
is measured by `benchmarks/generation_speed.py`'s sides, not assumed.

A weight shared by both halves (the embeddings; all but the cross-attention in a tied
"BERTShare") is stored in each graph: two files cannot share an initializer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

# transformers at import time: the package imports this module only to export or load an
# encoder-decoder's ONNX files
from transformers import GenerationMixin, PreTrainedModel

from occamtune.onnx_cache import cache_names, new_cache

STEP_INPUTS = ("decoder_input_ids", "encoder_hidden_states", "attention_mask")


def encoder_graph(path: Path) -> Path:
    """The encoder's file beside a decoding step's `path` (model.onnx -> model.encoder.onnx)."""
    return path.with_name(f"{path.stem}.encoder.onnx")


def _decoder_layers(model: nn.Module) -> int:
    config = model.encoder.config
    decoder = getattr(config, "decoder", config)  # EncoderDecoderConfig keeps the halves' own
    for name in ("num_decoder_layers", "decoder_layers", "num_hidden_layers"):
        value = getattr(decoder, name, None)
        if value:
            return int(value)
    raise ValueError(f"cannot tell the decoder's layer count from {type(config).__name__}")


def _cache(past: tuple[torch.Tensor, ...], layers: int) -> Any:
    """The step's cache: the decoder's self-attention filled from `past`, the cross-attention
    empty (so that each layer computes it from the source's hidden states)."""
    from transformers import EncoderDecoderCache

    own = new_cache()
    for i in range(layers):
        if past:
            own.update(past[2 * i], past[2 * i + 1], i)
    return EncoderDecoderCache(own, new_cache())


class EncodeSource(nn.Module):
    """The encoder graph's module: the source's hidden states."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        encoder = self.model.encoder.get_encoder()
        return encoder(input_ids=input_ids, attention_mask=attention_mask,
                       return_dict=True).last_hidden_state


class Seq2SeqStep(nn.Module):
    """The decoding step's module: the seq2seq model's own forward from the encoder's output
    (which applies what the model puts between its halves, e.g. `EncoderDecoderModel`'s
    projection when their widths differ), then the task head."""

    def __init__(self, model: nn.Module, layers: int) -> None:
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor,
                attention_mask: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from transformers.modeling_outputs import BaseModelOutput

        cache = _cache(past, self.layers)
        out = self.model.encoder(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states),
                                 attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                                 cache=cache, use_cache=True, return_dict=True)
        logits = self.model.head(out.logits)
        t = decoder_input_ids.shape[1]
        new: list[torch.Tensor] = []
        for layer in cache.self_attention_cache.layers:  # the new tokens' entries: the last T
            new += [layer.keys[:, :, -t:], layer.values[:, :, -t:]]
        return (logits, *new)


def seq2seq_info(model: nn.Module) -> dict[str, Any]:
    """What the loader needs: the decoder's layer count and each layer's cached (heads, head
    size), read from one step."""
    layers = _decoder_layers(model)
    step = Seq2SeqStep(model, layers).eval()
    hidden = EncodeSource(model).eval()
    ids = torch.ones(1, 2, dtype=torch.long)
    with torch.no_grad():
        out = step(ids, hidden(ids, torch.ones_like(ids)), torch.ones_like(ids))
    shapes = [[int(k.shape[1]), int(k.shape[3])] for k in out[1::2]]
    return {"generator": True, "seq2seq": True, "layers": layers, "cache_shapes": shapes}


def export_seq2seq(model: nn.Module, path: Path) -> None:
    """Write the decoding step of `model` to `path` and its encoder to `encoder_graph(path)`
    (fp32 ONNX)."""
    info = seq2seq_info(model)
    layers, shapes = info["layers"], info["cache_shapes"]
    b, s, t, p = 2, 7, 2, 3
    ids = torch.ones(b, s, dtype=torch.long)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, 5:] = 0  # a right-padded source: the mask is traced as data, not as "no padding"
    model.eval()
    # the TorchScript exporter, as for a decoder's step (onnx_generate.export_generator); the
    # wrappers in eval mode: the exporter puts each module back in the mode it found it in
    encode = EncodeSource(model).eval()
    with torch.no_grad():
        torch.onnx.export(encode, (ids, mask), str(encoder_graph(path)),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["encoder_hidden_states"],
                          dynamic_axes={name: {0: "batch", 1: "source"} for name in
                                        ("input_ids", "attention_mask", "encoder_hidden_states")},
                          opset_version=17, dynamo=False)
        hidden = encode(ids, mask)
    pasts, presents = cache_names("past", layers), cache_names("present", layers)
    axes: dict[str, dict[int, str]] = {
        "decoder_input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "source"},
        "encoder_hidden_states": {0: "batch", 1: "source"}, "logits": {0: "batch", 1: "new"},
        **{name: {0: "batch", 2: "past"} for name in pasts},
        **{name: {0: "batch", 2: "new"} for name in presents}}
    dummy = (torch.ones(b, t, dtype=torch.long), hidden, mask,
             *(torch.zeros(b, h, p, d) for h, d in shapes for _ in range(2)))
    with torch.no_grad():
        torch.onnx.export(Seq2SeqStep(model, layers).eval(), dummy, str(path),
                          input_names=[*STEP_INPUTS, *pasts], output_names=["logits", *presents],
                          dynamic_axes=axes, opset_version=17, dynamo=False)


class OnnxSeq2Seq:
    """An encoder-decoder's two ONNX graphs in ONNX Runtime, answering like the generate task
    model: `model(**batch)` gives every target position's logits (teacher forcing, for the
    references' cost); `causal_lm()` gives a model for transformers' `generate`."""

    seq2seq = True

    def __init__(self, encoder: Any, step: Any, head_config: Any, config: Any,
                 info: dict[str, Any], pad_id: int = 0) -> None:
        self.encoder_session, self.session = encoder, step
        self.head_config, self.config = head_config, config
        self.layers = int(info["layers"])
        self.shapes = [tuple(s) for s in info["cache_shapes"]]
        self.pad_id = pad_id

    @property
    def labels(self) -> list[str]:
        return list(self.head_config.labels)

    def eval(self) -> OnnxSeq2Seq:
        return self

    def encode_source(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        out = self.encoder_session.run(None, {k: v.long().contiguous().numpy() for k, v in feeds.items()})
        return torch.from_numpy(out[0])

    def step(self, decoder_input_ids: torch.Tensor, hidden: torch.Tensor,
             attention_mask: torch.Tensor,
             past: list[torch.Tensor] | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One run of the step: the new tokens' logits and keys and values (no cache: empty)."""
        b = decoder_input_ids.shape[0]
        if past is None:
            past = [torch.zeros(b, h, 0, d) for h, d in self.shapes for _ in range(2)]
        feeds = {"decoder_input_ids": decoder_input_ids.long().numpy(),
                 "encoder_hidden_states": hidden.contiguous().numpy(),
                 "attention_mask": attention_mask.long().contiguous().numpy(),
                 **{n: v.contiguous().numpy() for n, v in zip(cache_names("past", self.layers), past)}}
        out = self.session.run(None, feeds)
        return torch.from_numpy(out[0]), [torch.from_numpy(a) for a in out[1:]]

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
        hidden = self.encode_source(batch["input_ids"], mask)
        logits, _ = self.step(batch["decoder_input_ids"], hidden, mask, None)
        return logits

    def causal_lm(self) -> OnnxSeq2SeqLM:
        return OnnxSeq2SeqLM(self)


class _Encoder(nn.Module):
    """What `generate` calls as the model's encoder: the encoder graph."""

    def __init__(self, model: OnnxSeq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return BaseModelOutput(last_hidden_state=self.model.encode_source(input_ids, mask))


class OnnxSeq2SeqLM(PreTrainedModel, GenerationMixin):  # type: ignore[misc]
    """What transformers' `generate` drives for an encoder-decoder: its encoder is one run of
    the encoder graph, each forward one run of the step, the decoder's self-attention cache an
    `EncoderDecoderCache` that it fills with the step's new keys and values."""

    main_input_name = "input_ids"
    # the attention runs inside the graphs: whichever the config names, this class has none
    _supports_sdpa = _supports_flash_attn = _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, model: OnnxSeq2Seq) -> None:
        super().__init__(model.config)
        self.model = model
        self.source_encoder = _Encoder(model)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def get_encoder(self, *args: Any, **kwargs: Any) -> nn.Module:
        return self.source_encoder

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, encoder_outputs: Any = None,
                cache: Any = None, use_cache: bool = True, **kwargs: Any) -> Any:
        from transformers import EncoderDecoderCache
        from transformers.modeling_outputs import Seq2SeqLMOutput

        hidden = encoder_outputs[0] if encoder_outputs is not None else \
            self.model.encode_source(input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        cached = cache.get_seq_length() if cache is not None else 0
        past = None
        if cached:
            own = cache.self_attention_cache
            past = [x for layer in own.layers[: self.model.layers] for x in (layer.keys, layer.values)]
        else:  # `generate`'s empty cache is the config's own: this step needs its own kind
            cache = EncoderDecoderCache(new_cache(), new_cache())
        logits, new = self.model.step(decoder_input_ids, hidden, attention_mask, past)
        for i in range(self.model.layers):
            cache.self_attention_cache.update(new[2 * i], new[2 * i + 1], i)
        return Seq2SeqLMOutput(logits=logits, cache=cache)


def load_seq2seq_graphs(folder: Path, session: Any, head_config: Any, info: dict[str, Any],
                        pad_id: int) -> OnnxSeq2Seq:
    """The export in `folder` (its step already in `session`) with its encoder graph."""
    import onnxruntime as ort
    from transformers import AutoConfig

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = session.get_session_options().intra_op_num_threads
    encoder = ort.InferenceSession(str(folder / info["encoder_onnx"]), opts,
                                   providers=["CPUExecutionProvider"])
    return OnnxSeq2Seq(encoder, session, head_config, AutoConfig.from_pretrained(folder), info,
                       pad_id)

