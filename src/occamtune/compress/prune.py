"""Unstructured magnitude pruning of the encoder's Linear weights.

One-shot magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient
Neural Networks"): zero the smallest-magnitude weights, globally across the encoder or per layer,
then fine-tune with the zeros kept (the step hook re-applies the masks after each optimizer step).

Gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune"): the sparsity follows the cubic
schedule s(t) = s_f (1 - (1 - t / (ramp T))^3) during fine-tuning, masks recomputed by magnitude
as it rises, reaching s_f at `RAMP` of the steps so the last quarter recovers; the masks are
re-applied to the returned model at the end, so the final sparsity is exact.

Masks are kept on each pruned Linear as a non-persistent buffer `weight_mask`; the artifact
stores any weight with enough zeros as a bitmask plus its nonzero values.
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
)
from occamtune.compress.layout import linear_layout
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError
from occamtune.models import TaskModel

SCOPES = ("global", "layer")
RAMP = 0.75  # fraction of the fine-tuning steps over which gradual pruning reaches its target


@dataclass(frozen=True)
class PruneConfig(CompressionConfig):
    """Magnitude pruning of the encoder's Linear weights.

    Attributes:
        sparsity: fraction of those weights set to zero, in [0, 1).
        scope: "global" (one threshold for the encoder) or "layer" (the same sparsity per matrix).
        gradual: prune gradually during fine-tuning on the cubic schedule (needs ctx.finetune).
        epochs: fine-tuning epochs; None uses the run's own.
    """

    name = "prune"
    trains = True
    search_order = 30
    level_rank = 3  # sparser first, after the steps that shrink the bytes directly
    search_dims = (SearchDim("sparsity", (0.0, 0.5, 0.7, 0.8, 0.9), ok=lambda v: 0.0 <= v < 1.0,
                             doc="unstructured magnitude-pruning sparsities."),)

    sparsity: float = 0.5
    scope: str = "global"
    gradual: bool = False
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "sparsity", 0.0, 1.0, hi_open=True)
        check_epochs(self)
        if self.scope not in SCOPES:
            raise ConfigError(f"prune: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if not isinstance(self.gradual, bool):
            raise ConfigError(f"prune: gradual must be true or false, got {self.gradual!r}")

    @classmethod
    def from_point(cls, point: Point, space: Any) -> PruneConfig | None:
        return cls(sparsity=float(point["sparsity"])) if point.get("sparsity", 0.0) else None

    @classmethod
    def level(cls, point: Point) -> float:
        return point.get("sparsity", 0.0)


def cubic_sparsity(step: int, total: int, final: float, ramp: float = RAMP) -> float:
    """Zhu & Gupta's s(t) = s_f (1 - (1 - t / (ramp total))^3), flat at s_f after the ramp."""
    end = max(1.0, ramp * total)
    frac = min(1.0, step / end)
    return final * (1.0 - (1.0 - frac) ** 3)


def prunable(model: TaskModel) -> dict[str, nn.Linear]:
    """The encoder's Linear layers by name (shared modules once)."""
    out, seen = {}, set()
    for name, module in model.encoder.named_modules():
        if isinstance(module, nn.Linear) and id(module) not in seen:
            seen.add(id(module))
            out[name] = module
    return out


def _threshold(values: torch.Tensor, sparsity: float) -> float:
    """The magnitude at or below which `sparsity` of `values` fall (kthvalue, 1-based k)."""
    k = round(sparsity * values.numel())
    return float(values.kthvalue(k).values) if k > 0 else -1.0


def magnitude_masks(layers: dict[str, nn.Linear], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing the `sparsity` smallest-magnitude weights."""
    if scope == "global":
        flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        cut = _threshold(flat, sparsity)
        return {n: m.weight.detach().abs() > cut for n, m in layers.items()}
    return {n: m.weight.detach().abs() > _threshold(m.weight.detach().abs().flatten(), sparsity)
            for n, m in layers.items()}


def apply_masks(layers: dict[str, nn.Linear], masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked weights and keep each mask as the buffer `weight_mask`."""
    with torch.no_grad():
        for name, module in layers.items():
            mask = masks[name].to(module.weight.device)
            module.weight.mul_(mask)
            module.register_buffer("weight_mask", mask, persistent=False)


def sparsity_of(layers: dict[str, nn.Linear]) -> float:
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    return zeros / max(1, sum(m.weight.numel() for m in layers.values()))


@register(PruneConfig)
def _prune(model: TaskModel, config: PruneConfig,
           ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    if config.gradual and ctx.finetune is None:
        raise ConfigError("prune: gradual=true prunes during fine-tuning: give a CompressContext "
                          "with `finetune`, or use gradual=false for one-shot pruning")
    step = StepRecord()
    linear_layout(model, step)  # GPT-2's Conv1D projections become nn.Linear, pruned as such
    layers = prunable(model)
    state = {"masks": magnitude_masks(layers, 0.0 if config.gradual else config.sparsity,
                                      config.scope), "level": 0.0}
    apply_masks(layers, state["masks"])

    def hook(step: int, total: int) -> None:
        if config.gradual:
            level = cubic_sparsity(step, total, config.sparsity)
            if level - state["level"] >= 0.005 or (level == config.sparsity > state["level"]):
                state["masks"], state["level"] = magnitude_masks(layers, level, config.scope), level
        apply_masks(layers, state["masks"])

    if ctx.finetune is not None:
        model = ctx.finetune(model, step_hook=hook, epochs=config.epochs)
        layers = prunable(model)
    # gradual: the returned best model may be an earlier checkpoint; bring it to the final sparsity
    final = magnitude_masks(layers, config.sparsity, config.scope) if config.gradual else state["masks"]
    apply_masks(layers, final)
    step.facts["sparsity"] = round(sparsity_of(layers), 4)
    return model, step
