"""Structured pruning: remove whole attention heads and feed-forward neurons.

Heads (Michel et al. 2019, "Are Sixteen Heads Really Better than One?") are ranked by the L2 norm
of their slice of the attention output projection; under grouped-query attention the unit is a
key/value group with its query heads, which go together. FFN neurons are ranked by the size of
their contribution to the residual stream: with calibration batches (importance="activation",
the default), the root mean square of the neuron's activation (the down projection's input)
over real tokens times the norm of its column of the down projection (Wanda-style, Sun et al.
2023, per neuron); without, by weights alone, ||up row|| (* ||gate row||) * ||down column||.
Ranked by activation, far less is lost before fine-tuning than ranked by weights (checked by
hand on a MiniLM student of CoNLL-2003, not a benchmark). The least important `heads` / `ffn`
fraction of each layer is cut out: the query/key/value rows and output-projection columns, the
up/gate rows and down columns are sliced into new, smaller nn.Linear layers, so the matrices
really shrink. Where the projections live is the model family's adapter's business
(`occamtune.models.families`); GPT-2's Conv1D projections become nn.Linear first.
Each layer keeps at least one head and one neuron. Where one position-bias table with a
column per head serves every layer (T5), every layer keeps the same heads (`cut_same_heads`).

With calibration batches (`refit`, the default), the layers are cut one after another, and after
each cut the output projection (attention output, FFN output) is refit by least squares so that
the kept heads and neurons reproduce the unpruned layer's output on the calibration tokens (see
`refit_output`); each layer is measured as the cuts before it left the model. Before any
fine-tuning, the refit keeps much of what pruning alone loses, for FFN neurons and heads alike
(docs/benchmarks/structured-refit.md, from benchmarks/refit.py).

Fine-tunes afterwards when ctx.finetune is given (and epochs is not 0): by default with the
unpruned model as teacher (its soft labels and every layer's output, the loss of `distill`; the
residual width is unchanged, so layer j matches layer j), which recovers more than the gold
labels alone, as in Lagunas et al. 2021 and CoFi (Xia et al. 2022).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    Point,
    SearchDim,
    check_epochs,
    check_range,
    register,
    structure_op,
)
from occamtune.compress.calibrate import token_means
from occamtune.compress.distill import DistillConfig, train_with_teacher
from occamtune.compress.layout import linear_layout
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError
from occamtune.models import TaskModel
from occamtune.models.families import Stack, find_stack, out_in_weight, stacks_of

log = logging.getLogger(__name__)
IMPORTANCE = ("activation", "magnitude")


@dataclass(frozen=True)
class StructuredPruneConfig(CompressionConfig):
    """Remove a fraction of each layer's attention heads and FFN neurons.

    Attributes:
        heads: fraction of heads removed per layer, in [0, 1).
        ffn: fraction of feed-forward neurons removed per layer, in [0, 1).
        epochs: fine-tuning epochs afterwards (when ctx.finetune is given); None = the run's own;
            0 = none (with `refit`, under a minute for MiniLM on one core: a later
            quantization-aware training can do the recovery).
        teacher: fine-tune on the unpruned model's soft labels and hidden states (False: on the
            gold labels only).
        importance: how FFN neurons are ranked: "activation" (on ctx.calibration; weights alone
            when the context has none) or "magnitude".
        refit: after cutting a layer, refit its output projections (attention and feed-forward)
            by least squares on ctx.refit_batches (else ctx.calibration), so that the kept heads
            and neurons make up for the removed ones (see `refit_output`); nothing to refit on
            without calibration.
    """

    name = "structured"
    trains = True
    search_order = 20
    search_dims = (
        SearchDim("heads", (0.0,), ok=lambda v: 0.0 <= v < 1.0,
                  doc="fractions of attention heads removed by structured pruning."),
        SearchDim("ffn", (0.0, 0.25, 0.5), ok=lambda v: 0.0 <= v < 1.0,
                  doc="fractions of feed-forward neurons removed by structured pruning."),
        SearchDim("prune_epochs", None, ok=lambda v: v is None or v >= 0,
                  rule=">= 0 (or unset)",
                  doc="epochs of recovery fine-tuning after structured pruning; None uses the "
                      "run's own epochs, 0 none (the layers are refit on calibration data)."),
    )

    heads: float = 0.25
    ffn: float = 0.25
    epochs: float | None = None
    teacher: bool = True
    importance: str = "activation"
    refit: bool = True

    def __post_init__(self) -> None:
        check_range(self, "heads", 0.0, 1.0, hi_open=True)
        check_range(self, "ffn", 0.0, 1.0, hi_open=True)
        if self.epochs != 0:
            check_epochs(self)
        if self.importance not in IMPORTANCE:
            raise ConfigError(f"structured: importance must be one of {', '.join(IMPORTANCE)}, "
                              f"got {self.importance!r}")

    @classmethod
    def from_point(cls, point: Point, space: Any) -> StructuredPruneConfig | None:
        heads, ffn = float(point.get("heads", 0.0)), float(point.get("ffn", 0.0))
        return cls(heads=heads, ffn=ffn, epochs=space.prune_epochs) if heads or ffn else None


def slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping the output rows (dim=0) or input columns (dim=1) in `index`."""
    from transformers.pytorch_utils import prune_linear_layer

    return prune_linear_layer(linear, index.long(), dim)


def input_gram(model: nn.Module, linear: nn.Linear,
               batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> torch.Tensor:
    """(in + 1, in + 1) float64 mean of x x^T over the real calibration tokens, x = a Linear's
    input with a constant 1 appended (the bias's input)."""
    return input_grams(model, [linear], batches)[0]


def input_grams(model: nn.Module, linears: list[nn.Linear],
                batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> list[torch.Tensor]:
    """`input_gram` of each Linear, from one calibration pass."""
    def moment(x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], dim=1)
        return x.T @ x

    means = token_means(model, {str(i): m for i, m in enumerate(linears)}, batches, moment,
                        stop=True)
    return [means[str(i)] for i in range(len(linears))]


def refit_output(old: nn.Linear, new: nn.Linear, gram: torch.Tensor, keep: torch.Tensor,
                 damp: float = 0.01) -> None:
    """Set `new` (the Linear `old` cut down to the input columns `keep`) to the least-squares fit
    of `old`'s outputs over the calibration inputs: with the bias as a constant input,
    W_keep = W G[:, keep] (G[keep, keep] + damp * mean(diag) I)^-1, G from `input_gram`.

    The kept heads and neurons then carry what the removed ones added on average and as far as
    they correlate with them: the "mask tuning" of Kwon et al. 2022 ("A Fast Post-Training
    Pruning Framework for Transformers"), a layer-wise reconstruction like GPTQ's. Written by
    hand: it is one linear solve on statistics this module gathers; no library does it for a
    sliced Hugging Face layer.
    """
    n = old.in_features
    w = old.weight.detach().double()
    cols = keep.long()
    if old.bias is not None:
        w = torch.cat([w, old.bias.detach().double()[:, None]], dim=1)
        cols = torch.cat([cols, torch.tensor([n])])
    else:
        gram = gram[:n, :n]
    a = gram[cols][:, cols].clone()
    a.diagonal().add_(damp * a.diagonal().mean())
    fit = torch.linalg.solve(a, gram[cols] @ w.T).T  # (out, kept [+ bias])
    with torch.no_grad():
        new.weight.copy_(fit[:, :len(keep)].float())
        if old.bias is not None:
            new.bias.copy_(fit[:, -1].float())


@structure_op("heads")
def _rebuild_heads(model: TaskModel, params: dict[str, Any]) -> None:
    stack = find_stack(model.encoder, params.get("stack", ""))
    layer = stack.layers()[params["layer"]]
    stack.family.keep_heads(stack.module, layer, list(range(params["heads"])))


@structure_op("ffn")
def _rebuild_ffn(model: TaskModel, params: dict[str, Any]) -> None:
    stack = find_stack(model.encoder, params.get("stack", ""))
    layer = stack.layers()[params["layer"]]
    stack.family.keep_neurons(layer, torch.arange(params["size"]))


def head_importance(stack: Stack, layer: nn.Module) -> torch.Tensor:
    """(units,) L2 norm of each unit's slice of the attention output projection's columns: a
    unit is a head, or under GQA a key/value group with its query heads (they go together)."""
    family = stack.family
    w = out_in_weight(family.part(layer, "o")).detach()  # (H, n_heads * d)
    units = family.heads_of(stack.module, layer) // family.group_size(stack.module.config)
    return w.view(w.shape[0], units, -1).pow(2).sum(dim=(0, 2)).sqrt()


def neuron_importance(stack: Stack, layer: nn.Module,
                      rms: torch.Tensor | None = None) -> torch.Tensor:
    """(intermediate,) ||down column|| of each FFN neuron times its activation's root mean
    square `rms` (the input of down) when given, else times ||up row|| (times ||gate row||
    for a gated MLP)."""
    family = stack.family
    w_out = out_in_weight(family.part(layer, "down")).detach().norm(dim=0)  # (I,) from (H, I)
    if rms is not None:
        return rms * w_out
    score = out_in_weight(family.part(layer, "up")).detach().norm(dim=1) * w_out
    gate = family.part(layer, "gate")
    return score if gate is None else score * out_in_weight(gate).detach().norm(dim=1)


def activation_rms(model: TaskModel, stack: Stack,
                   batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> list[torch.Tensor]:
    """Per layer of `stack`, (intermediate,) root mean square of each FFN neuron's activation
    (the input of the down projection) over real tokens."""
    family = stack.family
    layers = {str(i): family.part(layer, "down") for i, layer in enumerate(stack.layers())}
    means = token_means(model, layers, batches, lambda x: x.pow(2).sum(dim=0))
    return [means[str(i)].sqrt() for i in range(len(layers))]


def _n_keep(n: int, fraction: float) -> int:
    return max(1, n - round(fraction * n))


def _top_heads(scores: torch.Tensor, fraction: float, group: int) -> list[int]:
    """The query heads of the units (heads, or key/value groups of `group` query heads) with
    the largest `scores`, all but `fraction` of them, in order."""
    units = sorted(scores.argsort(descending=True)[:_n_keep(len(scores), fraction)].tolist())
    return [u * group + j for u in units for j in range(group)]


def cut_same_heads(model: TaskModel, stack: Stack, config: StructuredPruneConfig,
                   step: StepRecord,
                   refit_on: Callable[[], Iterable[dict[str, torch.Tensor]]] | None) -> None:
    """Cut every layer of `stack` down to the same heads, those of the largest importance
    summed over the layers, all at once; with `refit_on`, refit each output projection on the
    unpruned model's statistics.

    Why: in T5 the first layer computes one relative position bias, with a column per head,
    which every layer adds to its scores; a layer can only keep heads whose columns the table
    keeps, and no forward can run while some layers are cut and others not.
    """
    family, layers = stack.family, stack.layers()
    scores = torch.stack([head_importance(stack, layer) for layer in layers]).sum(dim=0)
    heads = _top_heads(scores, config.heads, family.group_size(stack.module.config))
    if len(heads) == family.heads_of(stack.module, layers[0]):
        return
    olds = [family.part(layer, "o") for layer in layers]
    grams = input_grams(model, olds, refit_on) if refit_on is not None else None
    for i, layer in enumerate(layers):
        index = family.keep_heads(stack.module, layer, heads)
        if grams is not None:
            refit_output(olds[i], family.part(layer, "o"), grams[i], index)
        step.changed("heads", layer=i, heads=len(heads), **_key(stack))


def _key(stack: Stack) -> dict[str, str]:
    """The stack's name in a replayed step (none for a model's only stack: as steps were
    recorded before encoder-decoders had two)."""
    return {"stack": stack.key} if stack.key else {}


def prune_layer(model: TaskModel, stack: Stack, i: int, config: StructuredPruneConfig,
                step: StepRecord, rms: torch.Tensor | None = None,
                refit_on: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None) -> dict[str, int]:
    """Prune layer i of `stack` in place (`rms`: its FFN activations' root mean squares),
    noting the changes in `step`; with calibration batches `refit_on`, refit the output
    projections (`refit_output`) and rank the neurons by the activations the layer sees after
    the layers before it were cut. A family whose layers keep the same heads (`same_heads`)
    had them cut before (`cut_same_heads`). Returns the kept counts (query heads, neurons)."""
    family, encoder = stack.family, stack.module
    layer = stack.layers()[i]
    scores = head_importance(stack, layer)  # per head, or per key/value group
    fraction = 0.0 if family.same_heads else config.heads
    heads = _top_heads(scores, fraction, family.group_size(encoder.config))
    if len(heads) < family.heads_of(encoder, layer):
        old = family.part(layer, "o")
        gram = input_gram(model, old, refit_on) if refit_on is not None else None
        index = family.keep_heads(encoder, layer, heads)
        if gram is not None:
            refit_output(old, family.part(layer, "o"), gram, index)
        step.changed("heads", layer=i, heads=len(heads), **_key(stack))
    if config.ffn == 0:
        return {"heads": len(heads), "ffn": family.part(layer, "down").in_features}
    old = family.part(layer, "down")
    gram = input_gram(model, old, refit_on) if refit_on is not None else None
    if gram is not None and config.importance == "activation":
        rms = gram.diagonal()[:-1].sqrt().float()
    scores = neuron_importance(stack, layer, rms)
    neurons = scores.argsort(descending=True)[:_n_keep(len(scores), config.ffn)].sort().values
    if len(neurons) < len(scores):
        family.keep_neurons(layer, neurons)
        if gram is not None:
            refit_output(old, family.part(layer, "down"), gram, neurons)
        step.changed("ffn", layer=i, size=len(neurons), **_key(stack))
    return {"heads": len(heads), "ffn": len(neurons)}


@register(StructuredPruneConfig)
def _structured(model: TaskModel, config: StructuredPruneConfig,
                ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    stacks = stacks_of(model.encoder, "structured")
    for stack in stacks:
        layers = stack.layers()
        if len({id(m) for m in layers}) < len(layers):
            raise ConfigError("structured: cannot prune shared layers; put `share` after "
                              "`structured`")
    step = StepRecord()
    linear_layout(model, step)  # GPT-2's Conv1D projections become nn.Linear
    train = ctx.finetune is not None and config.epochs != 0
    teacher = copy.deepcopy(model) if train and config.teacher else None
    refit_on = (ctx.refit_batches or ctx.calibration) if config.refit else None
    kept: dict[str, list[dict[str, int]]] = {}
    for stack in stacks:
        rms: list[torch.Tensor | None] = [None] * len(stack.layers())
        if config.importance == "activation" and config.ffn > 0:
            if ctx.calibration is None:
                log.warning("structured: no calibration batches; ranking FFN neurons by weights "
                            "alone")
            elif refit_on is None:  # with refit, each layer is measured as it is cut
                rms = list(activation_rms(model, stack, ctx.calibration))
        if stack.family.same_heads:
            cut_same_heads(model, stack, config, step, refit_on)
        kept[stack.key] = [prune_layer(model, stack, i, config, step, rms[i], refit_on)
                           for i in range(len(rms))]
    # one stack: its list, as before encoder-decoders; two: by half
    step.facts["kept"] = kept[""] if list(kept) == [""] else kept
    if teacher is not None:
        model = train_with_teacher(model, teacher, ctx.finetune, DistillConfig(), epochs=config.epochs)
    elif train:
        model = ctx.finetune(model, epochs=config.epochs)
    return model, step
