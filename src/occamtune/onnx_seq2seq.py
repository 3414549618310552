"""ONNX export of an encoder-decoder generator (T5, BART, a warm-started `EncoderDecoderModel`)
and the model that runs it in ONNX Runtime under transformers' `generate`.

Three graphs, each run where Optimum's exports run theirs:
- the encoder (`model.encoder.onnx`): the source -> its hidden states, once per source;
- the cross-attention's keys and values (`model.cross.onnx`): the hidden states -> every
  decoder layer's, once per source (what a decoding step would otherwise recompute at every
  token, for every row);
- the decoding step (`model.onnx`): the new target tokens, the source's mask, the decoder's
  cached self-attention keys and values and the cross-attention's -> the logits and the new
  tokens' keys and values.
The Python side keeps the cache (transformers' `EncoderDecoderCache`, both halves), so greedy
and beam search (which reorders both), the repetition controls and streaming are `generate`'s
own, as on the torch model.

The cross graph is traced from one decoder call on a start token: the exporter keeps only what
its outputs read, the cross-attention's key and value projections. A weight both halves share
(the embeddings; all but the cross-attention in a tied "BERTShare") is stored in the encoder's
file and the step's: two files cannot share an initializer.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from occamtune import onnx_cache
from occamtune.onnx_cache import (
    SPINNING,
    OnnxLM,
    OnnxStepModel,
    cache_from,
    cache_names,
    cache_outputs,
    keep_step,
    new_cache,
    onnx_session,
)

STEP_INPUTS = ("decoder_input_ids", "encoder_hidden_states", "attention_mask")


def encoder_graph(path: Path) -> Path:
    """The encoder's file beside a decoding step's `path` (model.onnx -> model.encoder.onnx)."""
    return path.with_name(f"{path.stem}.encoder.onnx")


def cross_graph(path: Path) -> Path:
    """The cross-attention's file beside a decoding step's `path` (-> model.cross.onnx)."""
    return path.with_name(f"{path.stem}.cross.onnx")


def _decoder_layers(model: nn.Module) -> int:
    config = model.encoder.config
    decoder = getattr(config, "decoder", config)  # EncoderDecoderConfig keeps the halves' own
    for name in ("num_decoder_layers", "decoder_layers", "num_hidden_layers"):
        value = getattr(decoder, name, None)
        if value:
            return int(value)
    raise ValueError(f"cannot tell the decoder's layer count from {type(config).__name__}")


def _cache(past: tuple[torch.Tensor, ...], cross: tuple[torch.Tensor, ...], layers: int) -> Any:
    """A step's cache: the decoder's self-attention from `past`, the cross-attention from
    `cross` (each empty when not given; a filled cross-attention cache is read, not
    recomputed: `EncoderDecoderCache.is_updated`)."""
    from transformers import EncoderDecoderCache

    own = cache_from(past[: 2 * layers]) if past else new_cache()
    other = cache_from(cross[: 2 * layers]) if cross else new_cache()
    return EncoderDecoderCache(own, other)


def _decode(model: nn.Module, ids: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor,
            cache: Any) -> Any:
    """The seq2seq model's own forward from the encoder's output (which applies what the model
    puts between its halves, e.g. `EncoderDecoderModel`'s projection when their widths differ)."""
    from transformers.modeling_outputs import BaseModelOutput

    return model.encoder(encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                         attention_mask=mask, decoder_input_ids=ids, cache=cache, use_cache=True,
                         return_dict=True)


class EncodeSource(nn.Module):
    """The encoder graph's module: the source's hidden states."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        encoder = self.model.encoder.get_encoder()
        return encoder(input_ids=input_ids, attention_mask=attention_mask,
                       return_dict=True).last_hidden_state


class CrossKeysValues(nn.Module):
    """The cross graph's module: every decoder layer's cross-attention keys and values, from one
    decoder call on the start token (only the key and value projections reach the outputs)."""

    def __init__(self, model: nn.Module, layers: int) -> None:
        super().__init__()
        self.model, self.layers = model, layers
        self.start = int(model.head_config.extra["decoder_start"])

    def forward(self, encoder_hidden_states: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = _cache((), (), self.layers)
        ids = torch.full((encoder_hidden_states.shape[0], 1), self.start, dtype=torch.long)
        _decode(self.model, ids, encoder_hidden_states, attention_mask, cache)
        return tuple(x for layer in cache.cross_attention_cache.layers
                     for x in (layer.keys, layer.values))


class Seq2SeqStep(nn.Module):
    """The decoding step's module: the seq2seq model's forward with both caches given, then the
    task head."""

    def __init__(self, model: nn.Module, layers: int, present: str = "all") -> None:
        super().__init__()
        self.model, self.layers, self.present = model, layers, present

    def forward(self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor,
                attention_mask: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = 2 * self.layers
        cache = _cache(caches[:n], caches[n:], self.layers)
        out = _decode(self.model, decoder_input_ids, encoder_hidden_states, attention_mask, cache)
        logits = self.model.head(out.logits)
        t = decoder_input_ids.shape[1]
        return (logits, *cache_outputs(cache.self_attention_cache.layers, t, self.present))


def seq2seq_info(model: nn.Module) -> dict[str, Any]:
    """What the loader needs: the decoder's layer count and each layer's cached (heads, head
    size), for its self-attention and its cross-attention, read from one call."""
    layers = _decoder_layers(model)
    ids = torch.ones(1, 2, dtype=torch.long)
    with torch.no_grad():
        hidden = EncodeSource(model).eval()(ids, torch.ones_like(ids))
        cross = CrossKeysValues(model, layers).eval()(hidden, torch.ones_like(ids))
        # no past and no cross inputs: the self-attention's new entries alone (its heads may
        # be fewer than the cross-attention's: structured pruning cuts only its own)
        out = Seq2SeqStep(model, layers, "new").eval()(ids, hidden, torch.ones_like(ids))
    return {"generator": True, "seq2seq": True, "layers": layers,
            "cache_shapes": [[int(k.shape[1]), int(k.shape[3])] for k in out[1::2]],
            "cross_shapes": [[int(k.shape[1]), int(k.shape[3])] for k in cross[0::2]],
            "present": onnx_cache.PRESENT}


def export_seq2seq(model: nn.Module, path: Path) -> None:
    """Write the decoding step of `model` to `path`, its encoder to `encoder_graph(path)` and
    its cross-attention's keys and values to `cross_graph(path)` (fp32 ONNX)."""
    info = seq2seq_info(model)
    layers = info["layers"]
    b, s, t, p = 2, 7, 2, 3
    ids = torch.ones(b, s, dtype=torch.long)
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, 5:] = 0  # a right-padded source: the mask is traced as data, not as "no padding"
    model.eval()
    source = {"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"},
              "encoder_hidden_states": {0: "batch", 1: "source"}}
    pasts, presents = cache_names("past", layers), cache_names("present", layers)
    crosses = cache_names("cross", layers)
    # the TorchScript exporter, as for a decoder's step (onnx_generate.export_generator); the
    # wrappers in eval mode: the exporter puts each module back in the mode it found it in
    with torch.no_grad():
        encode = EncodeSource(model).eval()
        torch.onnx.export(encode, (ids, mask), str(encoder_graph(path)),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["encoder_hidden_states"], dynamic_axes=source,
                          opset_version=17, dynamo=False)
        hidden = encode(ids, mask)
        keys_values = CrossKeysValues(model, layers).eval()
        torch.onnx.export(keys_values, (hidden, mask), str(cross_graph(path)),
                          input_names=["encoder_hidden_states", "attention_mask"],
                          output_names=crosses,
                          dynamic_axes={**source, **{n: {0: "batch", 2: "source"} for n in crosses}},
                          opset_version=17, dynamo=False)
        cross = keys_values(hidden, mask)
        axes: dict[str, dict[int, str]] = {
            **source, "decoder_input_ids": {0: "batch", 1: "new"}, "logits": {0: "batch", 1: "new"},
            **{name: {0: "batch", 2: "past"} for name in pasts},
            **{name: {0: "batch", 2: "source"} for name in crosses},
            **{name: {0: "batch", 2: "total" if info["present"] == "all" else "new"}
               for name in presents}}
        dummy = (torch.ones(b, t, dtype=torch.long), hidden, mask,
                 *(torch.zeros(b, h, p, d) for h, d in info["cache_shapes"] for _ in range(2)),
                 *cross)
        torch.onnx.export(Seq2SeqStep(model, layers, info["present"]).eval(), dummy, str(path),
                          input_names=[*STEP_INPUTS, *pasts, *crosses],
                          output_names=["logits", *presents], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _run(session: Any, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """One run of `session` on the feeds its graph declares (the exporter drops an input its
    graph does not read, e.g. a mask that only the attention the graph skips would use)."""
    wanted = {i.name for i in session.get_inputs()}
    out = session.run(None, {k: v.contiguous().numpy() for k, v in feeds.items() if k in wanted})
    return [torch.from_numpy(a) for a in out]


class OnnxSeq2Seq(OnnxStepModel):
    """An encoder-decoder's three ONNX graphs in ONNX Runtime, answering like the generate task
    model: `model(**batch)` gives every target position's logits (teacher forcing, for the
    references' cost); `causal_lm()` gives a model for transformers' `generate`."""

    seq2seq = True

    def __init__(self, sessions: dict[str, Any], head_config: Any, config: Any,
                 info: dict[str, Any], pad_id: int = 0) -> None:
        super().__init__(sessions["step"], head_config, config, info, pad_id)
        self.encoder_session, self.cross_session = sessions["encoder"], sessions["cross"]

    def encode_source(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return _run(self.encoder_session, {"input_ids": input_ids.long(),
                                           "attention_mask": attention_mask.long()})[0]

    def cross(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """Every decoder layer's cross-attention keys and values (key, value, key, ...)."""
        return _run(self.cross_session, {"encoder_hidden_states": hidden,
                                         "attention_mask": attention_mask.long()})

    def step(self, decoder_input_ids: torch.Tensor, hidden: torch.Tensor,
             attention_mask: torch.Tensor, past: list[torch.Tensor] | None,
             cross: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One run of the step: the new tokens' logits and keys and values (no past: empty)."""
        b = decoder_input_ids.shape[0]
        if past is None:
            past = [torch.zeros(b, h, 0, d) for h, d in self.shapes for _ in range(2)]
        feeds = {"decoder_input_ids": decoder_input_ids.long(), "encoder_hidden_states": hidden,
                 "attention_mask": attention_mask.long(),
                 **dict(zip(cache_names("past", self.layers), past)),
                 **dict(zip(cache_names("cross", self.layers), cross))}
        out = _run(self.session, feeds)
        return out[0], out[1:]

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
        hidden = self.encode_source(batch["input_ids"], mask)
        logits, _ = self.step(batch["decoder_input_ids"], hidden, mask, None,
                              self.cross(hidden, mask))
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


class OnnxSeq2SeqLM(OnnxLM):
    """What transformers' `generate` drives for an encoder-decoder: its encoder is one run of
    the encoder graph; the first forward fills the cache's cross-attention half from the cross
    graph (after `generate` has repeated the source's states for the beams); each forward is
    one run of the step, whose new keys and values fill the self-attention half."""

    def __init__(self, model: OnnxSeq2Seq) -> None:
        super().__init__(model.config)
        self.model = model
        self.source_encoder = _Encoder(model)

    def get_encoder(self, *args: Any, **kwargs: Any) -> nn.Module:
        return self.source_encoder

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, encoder_outputs: Any = None,
                cache: Any = None, use_cache: bool = True, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import Seq2SeqLMOutput

        hidden = encoder_outputs[0] if encoder_outputs is not None else \
            self.model.encode_source(input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        layers = self.model.layers
        past = None
        if cache is not None and cache.get_seq_length():
            past = [x for layer in cache.self_attention_cache.layers[:layers]
                    for x in (layer.keys, layer.values)]
        else:  # `generate`'s empty cache is the config's own: this step needs its own kind
            cache = _cache((), tuple(self.model.cross(hidden, attention_mask)), layers)
        cross = [x for layer in cache.cross_attention_cache.layers[:layers]
                 for x in (layer.keys, layer.values)]
        logits, new = self.model.step(decoder_input_ids, hidden, attention_mask, past, cross)
        keep_step(cache.self_attention_cache, new, self.model.present)
        return Seq2SeqLMOutput(logits=logits, cache=cache)


def load_seq2seq_graphs(folder: Path, session: Any, head_config: Any, info: dict[str, Any],
                        pad_id: int) -> OnnxSeq2Seq:
    """The export in `folder` (its step already in `session`) with its encoder and cross
    graphs, on as many threads as the step."""
    import onnxruntime as ort
    from transformers import AutoConfig

    step = session.get_session_options()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = step.intra_op_num_threads
    with contextlib.suppress(RuntimeError):  # the step's spinning setting, where it has one
        opts.add_session_config_entry(SPINNING, step.get_session_config_entry(SPINNING))
    sessions = {name: onnx_session(folder / info[f"{name}_onnx"], opts)
                for name in ("encoder", "cross")}
    return OnnxSeq2Seq({**sessions, "step": session}, head_config,
                       AutoConfig.from_pretrained(folder), info, pad_id)
