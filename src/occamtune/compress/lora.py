"""LoRA fine-tuning (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models").

Trains rank-r updates B A (scaled by alpha / r) of the target projections through `peft`, with
the rest of the encoder frozen and the task head trained, then merges them into the weights
(`merge_and_unload`), so the exported model is a plain encoder. What it saves is trainable
parameters and optimizer memory during fine-tuning, not model size.
"""

from __future__ import annotations

from dataclasses import dataclass

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    check_epochs,
    check_range,
    need_finetune,
    register,
)
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, count_parameters, family_of


@dataclass(frozen=True)
class LoraConfig(CompressionConfig):
    """LoRA adapters on the encoder, trained then merged.

    Attributes:
        r: rank of the updates.
        alpha: scaling numerator (updates are scaled by alpha / r).
        dropout: dropout on the adapter input.
        targets: names of the Linear modules adapted (BERT: query, key, value, dense); empty
            (the default): the family's query and value projections (from its adapter).
        epochs: training epochs; None = the run's own.
    """

    name = "lora"
    trains = True
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    targets: tuple[str, ...] = ()
    epochs: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "r", 1, 1 << 16)
        check_range(self, "alpha", 0, 1 << 16, lo_open=True)
        check_range(self, "dropout", 0.0, 1.0, hi_open=True)
        check_epochs(self)
        if isinstance(self.targets, (list, str)):
            targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
            object.__setattr__(self, "targets", targets)
        if not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError(f"lora: targets must be module names like [query, value], "
                              f"got {self.targets!r}")


@register(LoraConfig)
def _lora(model: TaskModel, config: LoraConfig,
          ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    finetune = need_finetune(ctx, "lora")
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = list(config.targets)
    if not targets:  # the family's query and value projections, by their last name
        family = family_of(model.encoder, "lora")
        targets = list(dict.fromkeys(path.rpartition(".")[2] for path in (family.q, family.v)))
    peft_config = PeftLoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                 target_modules=targets, bias="none")
    try:
        model.encoder = get_peft_model(model.encoder, peft_config)
    except ValueError as exc:
        raise ConfigError(f"lora: targets {targets} do not match the encoder's "
                          f"modules: {exc}") from exc
    trainable = count_parameters(model, trainable_only=True)
    model = finetune(model, epochs=config.epochs)
    model.encoder = model.encoder.merge_and_unload()
    for p in model.parameters():
        p.requires_grad_(True)
    return model, StepRecord(trainable=trainable)
