"""Structured pruning: remove whole attention heads and feed-forward neurons.

Heads (Michel et al. 2019, "Are Sixteen Heads Really Better than One?") and FFN neurons are
ranked by weight magnitude: a head by the L2 norm of its slice of the attention output
projection, a neuron by ||row of intermediate.dense|| * ||column of output.dense|| (the size of its
contribution to the residual stream). The least important `heads` / `ffn` fraction of each layer
is cut out: the query/key/value rows and output-projection columns, the intermediate rows and
output columns are sliced into new, smaller nn.Linear layers, so the matrices really shrink.
Each layer keeps at least one head and one neuron. Fine-tunes afterwards when ctx.finetune is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    check_epochs,
    check_range,
    record_structure,
    register,
    step_info,
    structure_op,
)
from occamtune.models import TaskModel


@dataclass(frozen=True)
class StructuredPruneConfig(CompressionConfig):
    """Remove a fraction of each layer's attention heads and FFN neurons.

    Attributes:
        heads: fraction of heads removed per layer, in [0, 1).
        ffn: fraction of feed-forward neurons removed per layer, in [0, 1).
        epochs: fine-tuning epochs afterwards (when ctx.finetune is given); None = the run's own.
    """

    name = "structured"
    heads: float = 0.25
    ffn: float = 0.25
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "heads", 0.0, 1.0, hi_open=True)
        check_range(self, "ffn", 0.0, 1.0, hi_open=True)
        check_epochs(self)


def slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping the output rows (dim=0) or input columns (dim=1) in `index`."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    out_f, in_f = weight.shape
    new = nn.Linear(in_f, out_f, bias=linear.bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach()[index] if dim == 0 else linear.bias.detach())
    return new


def keep_heads(layer: nn.Module, keep: list[int]) -> None:
    """Cut a BERT layer's attention down to the heads `keep`."""
    att, out = layer.attention.self, layer.attention.output
    d = att.attention_head_size
    index = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
    att.query, att.key, att.value = (slice_linear(m, index, 0) for m in (att.query, att.key, att.value))
    out.dense = slice_linear(out.dense, index, 1)
    att.num_attention_heads, att.all_head_size = len(keep), len(keep) * d


def keep_neurons(layer: nn.Module, keep: torch.Tensor) -> None:
    """Cut a BERT layer's feed-forward block down to the neurons `keep`."""
    layer.intermediate.dense = slice_linear(layer.intermediate.dense, keep, 0)
    layer.output.dense = slice_linear(layer.output.dense, keep, 1)


@structure_op("heads")
def _rebuild_heads(model: TaskModel, params: dict[str, Any]) -> None:
    keep_heads(model.encoder.encoder.layer[params["layer"]], list(range(params["heads"])))


@structure_op("ffn")
def _rebuild_ffn(model: TaskModel, params: dict[str, Any]) -> None:
    keep_neurons(model.encoder.encoder.layer[params["layer"]], torch.arange(params["size"]))


def head_importance(layer: nn.Module) -> torch.Tensor:
    """(n_heads,) L2 norm of each head's slice of the attention output projection."""
    att = layer.attention.self
    w = layer.attention.output.dense.weight.detach()  # (H, n_heads * d)
    return w.view(w.shape[0], att.num_attention_heads, -1).pow(2).sum(dim=(0, 2)).sqrt()


def neuron_importance(layer: nn.Module) -> torch.Tensor:
    """(intermediate,) ||W_in row|| * ||W_out column|| of each FFN neuron."""
    w_in = layer.intermediate.dense.weight.detach()  # (I, H)
    w_out = layer.output.dense.weight.detach()  # (H, I)
    return w_in.norm(dim=1) * w_out.norm(dim=0)


def _n_keep(n: int, fraction: float) -> int:
    return max(1, n - round(fraction * n))


def prune_layer(model: TaskModel, i: int, config: StructuredPruneConfig) -> dict[str, int]:
    """Prune layer i in place; returns the kept counts."""
    layer = model.encoder.encoder.layer[i]
    n_heads = layer.attention.self.num_attention_heads
    heads = sorted(head_importance(layer).argsort(descending=True)[:_n_keep(n_heads, config.heads)].tolist())
    if len(heads) < n_heads:
        keep_heads(layer, heads)
        record_structure(model, "heads", layer=i, heads=len(heads))
    scores = neuron_importance(layer)
    neurons = scores.argsort(descending=True)[:_n_keep(len(scores), config.ffn)].sort().values
    if len(neurons) < len(scores):
        keep_neurons(layer, neurons)
        record_structure(model, "ffn", layer=i, size=len(neurons))
    return {"heads": len(heads), "ffn": len(neurons)}


@register(StructuredPruneConfig)
def _structured(model: TaskModel, config: StructuredPruneConfig, ctx: CompressContext) -> TaskModel:
    layers = model.encoder.encoder.layer
    if len({id(m) for m in layers}) < len(layers):
        from occamtune.errors import ConfigError

        raise ConfigError("structured: cannot prune shared layers; put `share` after `structured`")
    kept = [prune_layer(model, i, config) for i in range(len(layers))]
    if ctx.finetune is not None:
        model = ctx.finetune(model, epochs=config.epochs)
    step_info(model, kept=kept)
    return model
