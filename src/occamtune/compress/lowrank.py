"""Low-rank factorisation of the encoder's Linear layers by truncated SVD.

W (out, in) = U S V^T is cut to the smallest rank r keeping `energy` of the squared singular values
(sum_{i<=r} s_i^2 >= energy * sum s_i^2, r >= min_rank), and the layer becomes two Linears,
in -> r (sqrt(S_r) V_r^T) and r -> out (U_r sqrt(S_r), with the bias), only when
r (in + out) < in * out (Denton et al. 2014, "Exploiting Linear Structure Within Convolutional
Networks for Efficient Evaluation"; for BERT, e.g. Ben Noach & Goldberg 2020). Fine-tunes
afterwards when ctx.finetune is given.
"""

from __future__ import annotations

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
from occamtune.compress.layout import linear_layout
from occamtune.compress.record import StepRecord
from occamtune.models import TaskModel


@dataclass(frozen=True)
class LowRankConfig(CompressionConfig):
    """Truncated-SVD factorisation of the encoder's Linear layers.

    Attributes:
        energy: fraction of the squared singular values kept, in (0, 1].
        min_rank: smallest rank used.
        epochs: fine-tuning epochs afterwards (when ctx.finetune is given); None = the run's own.
    """

    name = "lowrank"
    trains = True
    search_order = 40
    level_rank = 4  # less energy kept first
    # A truncated SVD of a sparse matrix gives dense factors, losing the sparsity: low-rank
    # factorisation is an alternative to unstructured pruning, tried only without it.
    search_dims = (SearchDim("lowrank_energy", (0.0, 0.9, 0.95), ok=lambda v: 0.0 <= v <= 1.0,
                             when=lambda p: p.get("sparsity", 0.0) == 0.0, otherwise=0.0,
                             doc="singular-value energy kept by low-rank factorisation (only "
                                 "without unstructured sparsity); 0 skips the step."),)

    energy: float = 0.9
    min_rank: int = 8
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "energy", 0.0, 1.0, lo_open=True)
        check_range(self, "min_rank", 1, 1 << 20)
        check_epochs(self)

    @classmethod
    def from_point(cls, point: Point, space: Any) -> LowRankConfig | None:
        energy = point.get("lowrank_energy", 0.0)
        return cls(energy=float(energy)) if energy else None

    @classmethod
    def level(cls, point: Point) -> float:
        return -(point.get("lowrank_energy", 0.0) or 1.0)


class LowRankLinear(nn.Sequential):
    """in -> rank (no bias) -> out (bias): a Linear of rank `rank`."""

    # no single weight matrix: code that reads a projection's `weight` when it is a tensor
    # (T5's feed-forward casts its input to the weight's dtype) finds none and moves on
    weight = None

    def __init__(self, in_features: int, rank: int, out_features: int, bias: bool = True) -> None:
        super().__init__(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features, bias=bias))


def rank_for_energy(singular: torch.Tensor, energy: float, min_rank: int = 1) -> int:
    """Smallest r with sum_{i<r} s_i^2 >= energy * sum s_i^2, at least min_rank (at most len)."""
    power = singular.double() ** 2
    cum = power.cumsum(0) / power.sum().clamp(min=1e-30)
    r = int((cum < energy - 1e-12).sum()) + 1
    return min(len(singular), max(r, min_rank))


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, module)


@structure_op("lowrank")
def _rebuild_lowrank(model: TaskModel, params: dict[str, Any]) -> None:
    old = model.get_submodule(params["module"])
    _set_module(model, params["module"], LowRankLinear(old.in_features, params["rank"],
                                                       old.out_features, old.bias is not None))


def factorize(model: TaskModel, name: str, linear: nn.Linear, config: LowRankConfig,
              step: StepRecord) -> int | None:
    """Replace `name` by its truncated SVD when that saves parameters (noted in `step`);
    returns the rank."""
    u, s, vh = torch.linalg.svd(linear.weight.detach().double(), full_matrices=False)
    r = rank_for_energy(s, config.energy, config.min_rank)
    if r * (linear.in_features + linear.out_features) >= linear.in_features * linear.out_features:
        return None
    _rebuild_lowrank(model, {"module": name, "rank": r})
    new = model.get_submodule(name)
    root = s[:r].sqrt()
    with torch.no_grad():
        new[0].weight.copy_((root[:, None] * vh[:r]).float())  # (r, in)
        new[1].weight.copy_((u[:, :r] * root[None, :]).float())  # (out, r)
        if linear.bias is not None:
            new[1].bias.copy_(linear.bias.detach())
    step.changed("lowrank", module=name, rank=r)
    return r


@register(LowRankConfig)
def _lowrank(model: TaskModel, config: LowRankConfig,
             ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    ranks, step = {}, StepRecord()
    linear_layout(model, step)  # GPT-2's Conv1D projections become nn.Linear, factorised as such
    factors = {id(f) for m in model.modules() if isinstance(m, LowRankLinear) for f in m}
    targets = [(f"encoder.{n}", m) for n, m in model.encoder.named_modules()
               if isinstance(m, nn.Linear) and id(m) not in factors]
    for name, linear in targets:
        r = factorize(model, name, linear, config, step)
        if r is not None:
            ranks[name] = r
    if ctx.finetune is not None and ranks:
        model = ctx.finetune(model, epochs=config.epochs)
    step.facts["ranks"] = ranks
    return model, step
