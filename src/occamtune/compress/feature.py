"""Feature extraction: freeze the encoder and train only the task head.

As in BERT's feature-based NER experiments (Devlin et al. 2019, section 5.3), the encoder is
not fine-tuned; with `last_k > 1` the head reads a learned softmax-weighted mix of the last k
layers' hidden states, times a learned scale (the scalar mix of ELMo, Peters et al. 2018).
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
    need_finetune,
    register,
    structure_op,
)
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError, ModelError
from occamtune.models import TaskModel, count_parameters


@dataclass(frozen=True)
class FeatureExtractConfig(CompressionConfig):
    """Freeze the encoder; train the head (on a scalar mix of the last `last_k` layers).

    Attributes:
        last_k: number of top layers mixed (1 = the last layer only).
        epochs: training epochs; None = the run's own.
    """

    name = "feature"
    trains = True
    last_k: int = 1
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "last_k", 1, 1000)
        check_epochs(self)


class ScalarMix(nn.Module):
    """gamma * sum_j softmax(w)_j h_j over the last k hidden states, as the encoder's output.

    Attached to the encoder with hooks: a pre-hook asks for all hidden states, a forward hook
    replaces `last_hidden_state` by the mix, so `TaskModel.forward` is unchanged.
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.weights = nn.Parameter(torch.zeros(k))
        self.gamma = nn.Parameter(torch.ones(()))

    def attach(self, encoder: nn.Module) -> None:
        encoder.scalar_mix = self
        encoder.register_forward_pre_hook(_want_hidden, with_kwargs=True)
        encoder.register_forward_hook(_mix_output)

    def forward(self, hidden: tuple[torch.Tensor, ...]) -> torch.Tensor:
        stack = torch.stack(hidden[-self.k:], dim=0)  # (k, B, T, H)
        w = torch.softmax(self.weights, dim=0).view(-1, 1, 1, 1)
        return self.gamma * (w * stack).sum(0)  # (B, T, H)


def _want_hidden(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return args, {**kwargs, "output_hidden_states": True}


def _mix_output(module: nn.Module, args: tuple, output: Any) -> Any:
    output.last_hidden_state = module.scalar_mix(output.hidden_states)
    return output


@structure_op("scalar_mix")
def _rebuild_mix(model: TaskModel, params: dict[str, Any]) -> None:
    ScalarMix(params["k"]).attach(model.encoder)


@register(FeatureExtractConfig)
def _feature(model: TaskModel, config: FeatureExtractConfig,
             ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    finetune = need_finetune(ctx, "feature")
    if getattr(model, "seq2seq", False):
        raise ModelError("feature: a frozen encoder with a trained head has no meaning for an "
                         "encoder-decoder generator, whose decoder writes the text: fine-tune it, "
                         "or compress it with quantize / prune")
    # every config answers num_hidden_layers (transformers maps GPT-2's n_layer and the like)
    n_layers = int(model.encoder.config.num_hidden_layers)
    if config.last_k > n_layers:
        raise ConfigError(f"feature: last_k must be at most the {n_layers} layers, got {config.last_k}")
    if hasattr(model.encoder, "scalar_mix"):
        raise ConfigError("feature: the encoder already has a scalar mix")
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    step = StepRecord()
    if config.last_k > 1:
        _rebuild_mix(model, {"k": config.last_k})
        step.changed("scalar_mix", k=config.last_k)
    step.trainable = count_parameters(model, trainable_only=True)
    model = finetune(model, epochs=config.epochs)  # the encoder stays frozen for later steps
    return model, step
