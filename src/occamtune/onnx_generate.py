"""ONNX export of a text generator (a generate run's decoder) with a key/value cache, and the
model that runs the file in ONNX Runtime under transformers' `generate`.

The file is one graph: a step of decoding. It reads the new tokens, their attention mask over
the cached and new positions, their positions, and every layer's cached keys and values; it
returns the logits at the asked positions and every layer's keys and values, cached and new
(`onnx_cache.PRESENT`). The Python side keeps those as the cache (transformers' `DynamicCache`),
so greedy and beam search, the repetition controls, streaming and left-padded batches are
`generate`'s own, as on the torch model.

Why ONNX Runtime: at one row a step (decoding), its matrix-vector kernels use both cores where
torch's MKL call does not (docs/benchmarks/generation.md measures both in one run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune import onnx_cache
from occamtune.onnx_cache import (
    OnnxLM,
    OnnxStepModel,
    cache_from,
    cache_names,
    cache_outputs,
    keep_step,
    new_cache,
)

STEP_INPUTS = ("input_ids", "attention_mask", "position_ids", "logits_at")


def _layers(model: nn.Module) -> int:
    """The number of cache slots of the model's decoder, its layers renumbered 0..L-1."""
    from occamtune.errors import ConfigError
    from occamtune.models.generation import cache_ready

    if not cache_ready(model.encoder):
        raise ConfigError("this generator shares one layer module across depths (cross-layer "
                          "sharing): its two uses would write one key/value cache slot, so it "
                          "has no ONNX decoding graph; export the run before `share`, or serve "
                          "the artifact with `occamtune serve`")
    return int(model.encoder.config.num_hidden_layers)


class DecodeStep(nn.Module):
    """The graph's module: one decoding step of `model` (a generate task model) with the cached
    keys and values as plain tensors (ONNX inputs and outputs are tensors, not a cache object);
    `present`: which of them it returns (`onnx_cache.PRESENT`)."""

    def __init__(self, model: nn.Module, layers: int, present: str = "all") -> None:
        super().__init__()
        self.model, self.layers, self.present = model, layers, present

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor, logits_at: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cache = cache_from(past[: 2 * self.layers])
        out = self.model.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                 position_ids=position_ids, cache=cache, use_cache=True)
        hidden = out.last_hidden_state  # (B, T, H)
        # the logits at the asked positions only: the vocabulary's output layer over every
        # prompt position costs more than the rest of the step
        index = logits_at.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        logits = self.model.head(hidden.gather(1, index))
        return (logits, *cache_outputs(cache.layers, input_ids.shape[1], self.present))


def cache_shapes(model: nn.Module, layers: int) -> list[list[int]]:
    """Per layer: (heads, head size) of its cached keys, read from a forward pass (grouped-query
    attention, GPT-2's full heads and Gemma's head size alike)."""
    cache = new_cache()
    with torch.no_grad():
        model.encoder(input_ids=torch.ones(1, 2, dtype=torch.long), cache=cache, use_cache=True)
    return [[int(layer.keys.shape[1]), int(layer.keys.shape[3])] for layer in cache.layers[:layers]]


def step_info(model: nn.Module) -> dict[str, Any]:
    """What the loader needs to drive the step of `model`: the cache's layer count and shapes."""
    if getattr(model, "seq2seq", False):  # three graphs: occamtune.onnx_seq2seq
        from occamtune.onnx_seq2seq import seq2seq_info

        return seq2seq_info(model)
    layers = _layers(model)
    return {"generator": True, "layers": layers, "cache_shapes": cache_shapes(model, layers),
            "present": onnx_cache.PRESENT}


def graphs(path: Path, model: nn.Module) -> list[Path]:
    """The files of a generator's export at `path`: its decoding step, and beside it an
    encoder-decoder's encoder and cross-attention graphs."""
    if getattr(model, "seq2seq", False):
        from occamtune.onnx_seq2seq import cross_graph, encoder_graph

        return [path, encoder_graph(path), cross_graph(path)]
    return [path]


def export_generator(model: nn.Module, path: Path) -> None:
    """Write the decoding step of `model` to `path` (fp32 ONNX; an encoder-decoder's other
    graphs beside it, `graphs`)."""
    if getattr(model, "seq2seq", False):
        from occamtune.onnx_seq2seq import export_seq2seq

        export_seq2seq(model, path)
        return
    info = step_info(model)
    layers, shapes = info["layers"], info["cache_shapes"]
    b, t, p = 2, 5, 3
    mask = torch.ones(b, p + t, dtype=torch.long)
    mask[0, :2] = 0  # a left-padded row: the mask is traced as data, not as "no padding"
    dummy = (torch.ones(b, t, dtype=torch.long), mask,
             torch.arange(p, p + t).expand(b, t), torch.full((b, 1), t - 1, dtype=torch.long),
             *(torch.zeros(b, h, p, d) for h, d in shapes for _ in range(2)))
    pasts, presents = cache_names("past", layers), cache_names("present", layers)
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"}, "logits_at": {0: "batch", 1: "asked"},
        "logits": {0: "batch", 1: "asked"},
        **{name: {0: "batch", 2: "past"} for name in pasts},
        **{name: {0: "batch", 2: "total" if info["present"] == "all" else "new"}
           for name in presents}}
    model.eval()
    # the TorchScript exporter: torch.export cannot state that the mask's length is the cached
    # length plus the new one (a sum of two free dimensions), which the step needs
    # the wrapper in eval mode: the exporter puts the module back in the mode it found it in
    with torch.no_grad():
        torch.onnx.export(DecodeStep(model, layers, info["present"]).eval(), dummy, str(path),
                          input_names=[*STEP_INPUTS, *pasts],
                          output_names=["logits", *presents], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def share_tied_head(path: Path) -> list[str]:
    """Write a tied output layer's matrix once. The tracer folds the transpose of the word
    embeddings (the output layer of a tied head) into an initializer of its own: the whole
    vocabulary twice on disk. Each such copy becomes a `Transpose` of the table, which ONNX
    Runtime folds when it loads the file (in memory, not on disk). For the fp32 file only: the
    int8 and 4-bit rewrites quantize a MatMul whose weight is an initializer. Returns the names
    replaced."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    tables = {node.input[0] for node in graph.node if node.op_type == "Gather"} & set(inits)
    replaced, transposes = [], []
    for name in tables:
        table = inits[name]
        if len(table.dims) != 2:
            continue
        value = numpy_helper.to_array(table)
        for other in list(graph.initializer):
            if (other.name == name or list(other.dims) != list(table.dims)[::-1]
                    or not np.array_equal(numpy_helper.to_array(other), value.T)):
                continue
            graph.initializer.remove(other)
            transposes.append(onnx.helper.make_node("Transpose", [name], [other.name],
                                                    perm=[1, 0], name=f"{other.name}_transpose"))
            replaced.append(other.name)
    if replaced:
        nodes = [*transposes, *graph.node]  # before every reader: the graph stays sorted
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(path))
    return replaced


class OnnxGenerator(OnnxStepModel):
    """A generator's ONNX decoding step in ONNX Runtime, answering like the generate task model:
    `model(**batch)` gives every position's logits (teacher forcing, for the references' cost);
    `causal_lm()` gives a model for transformers' `generate`."""

    def step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             position_ids: torch.Tensor, logits_at: torch.Tensor,
             past: list[torch.Tensor] | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One run of the graph: logits at `logits_at` and its `present.*` outputs (of kind
        `self.present`). Without a cache, one masked-out position stands for it (an empty input
        is not every runtime's friend; the mask gives the position no weight), and is taken off
        the outputs."""
        b = input_ids.shape[0]
        stand_in = past is None
        if stand_in:
            past = [torch.zeros(b, h, 1, d) for h, d in self.shapes for _ in range(2)]
            attention_mask = torch.cat([attention_mask.new_zeros(b, 1), attention_mask], 1)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "position_ids": position_ids, "logits_at": logits_at,
                 **dict(zip(cache_names("past", self.layers), past))}
        out = self.session.run(None, {k: v.contiguous().numpy() for k, v in feeds.items()})
        cached = [torch.from_numpy(a) for a in out[1:]]
        if stand_in and self.present == "all":
            cached = [x[:, :, 1:] for x in cached]
        return torch.from_numpy(out[0]), cached

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        ids = batch["input_ids"]
        mask = batch.get("attention_mask", torch.ones_like(ids))
        every = torch.arange(ids.shape[1]).expand(ids.shape[0], -1)
        logits, _ = self.step(ids, mask, _positions(mask), every, None)
        return logits

    def causal_lm(self) -> OnnxCausalLM:
        return OnnxCausalLM(self)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each real token's position counted over the real tokens before it (left padding)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class OnnxCausalLM(OnnxLM):
    """What transformers' `generate` drives: each forward is one run of the ONNX step, the
    cache a `DynamicCache` that it fills with the step's new keys and values."""

    def __init__(self, generator: OnnxGenerator) -> None:
        super().__init__(generator.config)
        self.generator = generator

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: Any = None,
                use_cache: bool = True, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import CausalLMOutputWithPast

        b, t = input_ids.shape
        cached = cache.get_seq_length() if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, cached + t, dtype=torch.long)
        if position_ids is None:
            position_ids = _positions(attention_mask)[:, -t:]
        past = None
        if cached:
            past = [x for layer in cache.layers[: self.generator.layers]
                    for x in (layer.keys, layer.values)]
        else:  # `generate`'s empty cache is the config's own: this step needs its own kind
            cache = new_cache()
        last = torch.full((b, 1), t - 1, dtype=torch.long)
        logits, new = self.generator.step(input_ids, attention_mask, position_ids, last, past)
        return CausalLMOutputWithPast(logits=logits,
                                      cache=keep_step(cache, new, self.generator.present))


def load_generator(folder: Path, session: Any, head_config: Any, info: dict[str, Any],
                   pad_id: int) -> Any:
    """The generator exported to `folder` (its step in `session`): an `OnnxGenerator`, or for an
    encoder-decoder an `onnx_seq2seq.OnnxSeq2Seq`."""
    from transformers import AutoConfig

    if info.get("seq2seq"):
        from occamtune.onnx_seq2seq import load_seq2seq_graphs

        return load_seq2seq_graphs(folder, session, head_config, info, pad_id)
    return OnnxGenerator(session, head_config, AutoConfig.from_pretrained(folder), info, pad_id)
