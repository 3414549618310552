"""Layer-dropping knowledge distillation (DistilBERT, Sanh et al. 2019).

The student is a copy of the fine-tuned teacher keeping `layers` of its encoder layers, trained
through `ctx.finetune` on

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))    (supervised positions)
  + (1 - alpha) * cross-entropy with the gold labels
  + hidden_weight * MSE(student layer j output, teacher layer keep[j] output)   (real tokens)

Which layers are kept (`pick`):
    spread: evenly spaced and always the last one: layer ((j + 1) * L) // n - 1 for j < n,
        e.g. 6 -> 3 keeps [1, 3, 5]. The task head was trained on the top layer's output, so
        keeping it gives the student a working head from the first step (DistilBERT's
        [0, 2, 4] starts from a pretrained, not fine-tuned, teacher where this does not matter).
    bottom: layers [0, n). top: layers [L - n, L).

On a whole encoder-decoder the student drops decoder layers and keeps the encoder whole: the
decoder runs once per written token, the encoder once per source, and the decoder's states
are those the hidden-state term matches (Shleifer & Rush 2020 shrink BART's decoder so).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    Point,
    SearchDim,
    check_epochs,
    check_range,
    need_finetune,
    register,
)
from occamtune.compress.record import StepRecord, record_of
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, count_parameters
from occamtune.models.families import Stack, stacks_of
from occamtune.tasks import get_task

PICKS = ("spread", "bottom", "top")


@dataclass(frozen=True)
class DistillConfig(CompressionConfig):
    """Distil the model into a student with fewer encoder layers (an encoder-decoder: fewer
    decoder layers).

    Attributes:
        layers: layers of the student (fewer than the teacher's).
        temperature: softmax temperature T of the distillation term.
        alpha: weight of the distillation term; 1 - alpha weighs the gold-label loss.
        hidden_weight: weight of the hidden-state MSE (0 turns it off).
        epochs: training epochs; None uses the run's own.
        pick: which teacher layers initialise the student: spread, bottom or top.
    """

    name = "distill"
    trains = True
    search_order = 10
    search_dims = (
        SearchDim("distill_layers", (0, 4, 3, 2), ok=lambda v: v >= 0,
                  for_teacher=lambda depths, n: tuple(d for d in depths if d == 0 or d < n) or (0,),
                  doc="student depths; 0 keeps the teacher's layers (no distillation). Depths "
                      "not below the teacher's are dropped when the space meets a model."),
        SearchDim("distill_epochs", None, doc="epochs of distillation; None uses the run's own."),
    )

    layers: int = 3
    temperature: float = 2.0
    alpha: float = 0.5
    hidden_weight: float = 1.0
    epochs: float | None = None
    pick: str = "spread"

    def __post_init__(self) -> None:
        check_range(self, "layers", 1, 1000)
        check_range(self, "temperature", 0.0, 100.0, lo_open=True)
        check_range(self, "alpha", 0.0, 1.0)
        check_range(self, "hidden_weight", 0.0, 1e6)
        check_epochs(self)
        if self.pick not in PICKS:
            raise ConfigError(f"distill: pick must be one of {', '.join(PICKS)}, got {self.pick!r}")

    @classmethod
    def from_point(cls, point: Point, space: Any) -> DistillConfig | None:
        if not point.get("distill_layers", 0):
            return None
        extra = {"epochs": space.distill_epochs} if space.distill_epochs is not None else {}
        return cls(layers=int(point["distill_layers"]), **extra)


def pick_layers(n_teacher: int, n_student: int, pick: str = "spread") -> list[int]:
    """0-based teacher layers the student keeps, in order."""
    if not 1 <= n_student < n_teacher:
        raise ConfigError(f"distill: layers must be in [1, {n_teacher - 1}] for a teacher with "
                          f"{n_teacher} layers, got {n_student}")
    if pick == "bottom":
        return list(range(n_student))
    if pick == "top":
        return list(range(n_teacher - n_student, n_teacher))
    return [((j + 1) * n_teacher) // n_student - 1 for j in range(n_student)]


def top_stack(model: TaskModel, method: str = "") -> Stack:
    """The stack of layers whose outputs are the model's hidden states: its only one, or an
    encoder-decoder's decoder."""
    return stacks_of(model.encoder, method)[-1]


def make_student(teacher: TaskModel, keep: list[int]) -> TaskModel:
    """A copy of the teacher with only the layers `keep` (of an encoder-decoder's decoder)."""
    student = copy.deepcopy(teacher)
    # the layer list, the config's layer count and per-layer lists, each layer's cache index
    top_stack(student, "distill").keep_layers(keep)
    return student


class LayerTap:
    """Forward hooks capturing each encoder layer's output (works through DDP wrappers)."""

    def __init__(self, model: TaskModel) -> None:
        self.outputs: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._hook)
                        for layer in top_stack(model).layers()]

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if module.training:  # not during the dev evaluations of finetune
            self.outputs.append(output[0] if isinstance(output, tuple) else output)

    def take(self) -> list[torch.Tensor]:
        out, self.outputs = self.outputs, []
        return out

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def n_layers(model: TaskModel) -> int:
    """The number of transformer layers of a task model's encoder (an encoder-decoder's
    decoder)."""
    return len(top_stack(model).layers())


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, gold: torch.Tensor,
                 config: DistillConfig) -> torch.Tensor:
    """alpha T^2 KL + (1 - alpha) CE on N supervised choices: the student's and the teacher's
    logits (N, L) and the gold classes (N,) (`Task.choices`)."""
    temp = config.temperature
    kl = F.kl_div(F.log_softmax(student / temp, -1), F.log_softmax(teacher / temp, -1),
                  log_target=True, reduction="batchmean") * temp**2
    return config.alpha * kl + (1 - config.alpha) * F.cross_entropy(student, gold)


def hidden_loss(student: list[torch.Tensor], teacher: tuple, keep: list[int],
                mask: torch.Tensor) -> torch.Tensor:
    """Mean over kept layers of the MSE between student and teacher layer outputs on real tokens."""
    real = mask.bool().unsqueeze(-1)  # (B, T, 1)
    total = student[0].new_zeros(())
    for s, i in zip(student, keep):
        t = teacher[i + 1]  # hidden_states[0] is the embedding output
        total = total + ((s - t) ** 2).masked_select(real).mean()
    return total / len(keep)


def train_with_teacher(student: TaskModel, teacher: TaskModel, finetune: Any, config: DistillConfig,
                       keep: list[int] | None = None, epochs: float | None = None,
                       lr: float | None = None) -> TaskModel:
    """Fine-tune `student` through `finetune` on the distillation loss against the frozen
    `teacher`: soft labels, gold labels and (with config.hidden_weight) the MSE of student layer j
    against teacher layer keep[j] (default: the same layer; the hidden sizes must match)."""
    teacher = teacher.eval()  # only run under no_grad, never given to the optimizer
    task = get_task(student.head_config.task)
    keep = list(range(n_layers(student))) if keep is None else keep
    tap = LayerTap(student) if config.hidden_weight > 0 else None
    mask = top_stack(student).mask  # the real positions of the layers tapped

    def loss_fn(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if tap is not None:
            tap.take()
        s, gold, _ = task.choices(m, batch)
        with torch.no_grad():
            t, _, t_hidden = task.choices(teacher, batch, hidden_states=tap is not None)
        loss = distill_loss(s, t, gold, config)
        if tap is None:  # soft and gold labels only
            return loss
        return loss + config.hidden_weight * hidden_loss(tap.take(), t_hidden, keep,
                                                         batch[mask])

    try:
        return finetune(student, loss_fn=loss_fn, epochs=epochs, lr=lr)
    finally:
        if tap is not None:
            tap.close()


@register(DistillConfig)
def _distill(model: TaskModel, config: DistillConfig,
             ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    finetune = need_finetune(ctx, "distill")
    earlier = record_of(model)
    if earlier.structure or earlier.codes:  # recorded by layer and by tensor name
        done = sorted({r["op"] for r in earlier.structure} | ({"k-bit codes"} if earlier.codes else set()))
        raise ConfigError(f"distill: put distill first in the pipeline: it keeps a subset of the "
                          f"layers, and the steps before it recorded changes by layer "
                          f"({', '.join(done)}) that the saved artifact could not replay on the "
                          "student")
    keep = pick_layers(len(top_stack(model, "distill").layers()), config.layers, config.pick)
    student = make_student(model, keep)
    for p in student.parameters():
        p.requires_grad_(True)
    trainable = count_parameters(student, trainable_only=True)
    student = train_with_teacher(student, model, finetune, config, keep, epochs=config.epochs)
    return student, StepRecord(trainable=trainable, facts={"kept_layers": keep})
