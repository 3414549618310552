"""Cross-layer parameter sharing (ALBERT, Lan et al. 2020).

The encoder's layers are split into `groups` consecutive groups; all layers of a group become
one BertLayer module (initialised with the average of the group's weights), so the same weights
run several times. The model is then fine-tuned; the artifact stores each shared tensor once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    check_epochs,
    check_range,
    need_finetune,
    register,
    structure_op,
)
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, family_of


@dataclass(frozen=True)
class ShareConfig(CompressionConfig):
    """Share one layer's weights across each group of consecutive layers.

    Attributes:
        groups: number of distinct layers left (1 = all layers share one).
        epochs: fine-tuning epochs; None = the run's own.
    """

    name = "share"
    trains = True
    groups: int = 2
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "groups", 1, 1 << 20)
        check_epochs(self)


def split_groups(n_layers: int, groups: int) -> list[list[int]]:
    """Consecutive groups of near-equal size, larger ones first: (5, 2) -> [[0, 1, 2], [3, 4]]."""
    size, extra = divmod(n_layers, groups)
    out, start = [], 0
    for g in range(groups):
        end = start + size + (g < extra)
        out.append(list(range(start, end)))
        start = end
    return out


@structure_op("share")
def _rebuild_share(model: TaskModel, params: dict[str, Any]) -> None:
    layers = family_of(model.encoder, "share").layer_list(model.encoder)
    for group in params["groups"]:
        for i in group[1:]:
            layers[i] = layers[group[0]]


def average_layer(layers: list[torch.nn.Module]) -> torch.nn.Module:
    """A copy of the first layer holding the mean of the layers' parameters; what the first
    layer alone holds (T5's position-bias table, which the first layer computes for all) is
    kept as it is."""
    shared = copy.deepcopy(layers[0])
    states = [layer.state_dict() for layer in layers]
    common = set.intersection(*(set(s) for s in states))
    shapes = [{k: tuple(s[k].shape) for k in common} for s in states]
    if any(shape != shapes[0] for shape in shapes) or any(set(s) - set(states[0]) for s in states):
        raise ConfigError("share: the layers of a group have different shapes (pruned or "
                          "factorised differently); put `share` before `lowrank`")
    with torch.no_grad():
        for name, tensor in shared.state_dict().items():
            if tensor.is_floating_point() and name in common:
                tensor.copy_(torch.stack([s[name] for s in states]).mean(0))
    return shared


@register(ShareConfig)
def _share(model: TaskModel, config: ShareConfig,
           ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    finetune = need_finetune(ctx, "share")
    layers = family_of(model.encoder, "share").layer_list(model.encoder)
    if config.groups >= len(layers):
        raise ConfigError(f"share: groups must be below the number of layers ({len(layers)}), "
                          f"got {config.groups}")
    groups = split_groups(len(layers), config.groups)
    for group in groups:
        layers[group[0]] = average_layer([layers[i] for i in group])
    _rebuild_share(model, {"groups": groups})
    step = StepRecord(facts={"groups": groups})
    step.changed("share", groups=groups)
    return finetune(model, epochs=config.epochs), step
