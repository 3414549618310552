"""Layout changes shared by the methods: GPT-2's Conv1D projections as nn.Linear.

transformers' Conv1D (GPT-2) computes x W + b with its weight stored (in, out), the transpose of
nn.Linear's. Slicing heads and neurons, k-bit quantization per output row, GPTQ, magnitude
pruning and SVD factorisation all speak nn.Linear; a method that touches these projections
first swaps each Conv1D for the nn.Linear computing the same function (`linear_layout`), and
the swap is a structural change the artifact replays before it fills in the weights.
"""

from __future__ import annotations

from typing import Any

from occamtune.compress.base import structure_op
from occamtune.compress.record import StepRecord
from occamtune.models import TaskModel, conv1d_to_linear
from occamtune.models.families import linear_of_conv1d, set_path


def linear_layout(model: TaskModel, step: StepRecord) -> list[str]:
    """Swap every Conv1D of the model for an nn.Linear (noted in `step`); the names swapped."""
    names = conv1d_to_linear(model)
    if names:
        step.changed("conv1d_linear", modules=names)
    return names


@structure_op("conv1d_linear")
def _rebuild_linear(model: TaskModel, params: dict[str, Any]) -> None:
    for name in params["modules"]:
        set_path(model, name, linear_of_conv1d(model.get_submodule(name)))
