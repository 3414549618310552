"""The task protocol: everything occamtune does that depends on the task, in one object.

A task is one module in `tasks/` with a class derived from `Task` and decorated with
`@register_task`. It says how to read its files, encode and collate examples, build the head,
compute the loss, decode, score, format predictions for the CLI and the HTTP server, and render
its report table. Nothing outside `tasks/` branches on a task's name: the training loop, the
compression methods, the search, the server and the CLI ask the task object.

Datasets (what `read` returns) have `path`, `items` (the examples, in file order, each with a
1-based `line`) and `with_items(items)` (a copy holding other examples).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from occamtune.errors import ConfigError, DataError

if TYPE_CHECKING:
    from occamtune.config import DataConfig, ModelConfig, RunConfig

TASKS: dict[str, Task] = {}


@dataclass
class Predictions:
    """Per example: label names (the task's own shape) and log-probabilities.

    For token tasks `labels[i]` is one tag per word and `log_probs[i]` is (N_words, L); for
    sequence tasks `labels[i]` is one label and `log_probs[i]` is (L,).
    """

    labels: list[Any]
    log_probs: list[np.ndarray]


@dataclass
class Examples:
    """A dataset as `read` gives it, for tasks with no richer one: the examples (each with a
    1-based `line`) in file order, and the file they came from."""

    items: list[Any]
    path: str

    def with_items(self, items: list[Any]) -> Examples:
        return Examples(list(items), self.path)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make the task available under its `name`."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> Task:
    """The task registered under `name`."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


class Task:
    """Base of the tasks: the methods every task implements, and shared defaults.

    Attributes:
        name: the task's name (`--task`, occamtune.json).
        metric: the key of the headline metric in `score`'s result (higher is better): what
            early stopping and the shrink search keep.
        headline: metric keys the CLI prints.
        needs_fast_tokenizer: the task aligns sub-words with words (a fast tokenizer's word ids).
        description: one line for `--help`.
        model_inputs: the batch tensors (B, T) the model reads (an ONNX export's inputs).
        special_tokens: tokens the task adds to the tokenizer as special tokens (e.g. entity
            markers); training adds them and grows the word embeddings to match.
        generative: the task writes text (no label set; the head is a language-model output
            layer): `occamtune.models.generation` decodes it, not `gather` / `decode`.
    """

    name: ClassVar[str] = ""
    metric: ClassVar[str] = ""
    headline: ClassVar[tuple[str, ...]] = ()
    needs_fast_tokenizer: ClassVar[bool] = False
    description: ClassVar[str] = ""
    model_inputs: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask")
    special_tokens: ClassVar[tuple[str, ...]] = ()
    generative: ClassVar[bool] = False

    # --- data -----------------------------------------------------------------------------------
    def read(self, path: str | Path, data: DataConfig | None = None, has_labels: bool = True) -> Any:
        """Parse one file into a dataset; a malformed line is a `DataError` naming file and line."""
        raise NotImplementedError

    def data_suffix(self, data: DataConfig) -> str | None:
        """The file suffix (e.g. ".de") that alone marks a data file of a folder when the task
        reads parallel files (the other side found beside it); None: every data file."""
        return None

    def label_set(self, dataset: Any) -> list[str]:
        """The labels of the training data, in the order the head's outputs take."""
        raise NotImplementedError

    def example_labels(self, example: Any) -> list[str]:
        """The gold labels of one example (empty when unlabelled), to check them against a set."""
        raise NotImplementedError

    def check_labels(self, dataset: Any, labels: list[str]) -> None:
        """A label that training never saw is an error naming its file and line."""
        known = set(labels)
        for example in dataset.items:
            for offset, label in enumerate(self.example_labels(example)):
                if label not in known:
                    raise self.label_error(dataset, example, offset, _unknown(label, labels))

    def label_error(self, dataset: Any, example: Any, index: int, message: str) -> DataError:
        """The error about the `index`-th label of `example`, naming its file and line."""
        return DataError(dataset.path, message, line=example.line + self.label_line_offset(index))

    def label_line_offset(self, index: int) -> int:
        """Lines between an example's first line and its `index`-th label (0: one per example)."""
        return 0

    def encode(self, dataset: Any, tokenizer: Any, labels: list[str], data: DataConfig,
               head: Any = None) -> list[Any]:
        """Model inputs (features) for every example; long inputs become several features
        (`head`: the model's HeadConfig, for tasks whose inputs depend on its settings)."""
        raise NotImplementedError

    def collator(self, pad_id: int) -> Callable[[list[Any]], dict[str, torch.Tensor]]:
        """Features -> a padded batch of tensors."""
        from occamtune.data.encode import Collator

        return Collator(pad_id=pad_id)

    def feature_length(self, feature: Any) -> int:
        """Sub-words of one feature (for length-sorted batches)."""
        return len(feature["input_ids"] if isinstance(feature, dict) else feature.input_ids)

    def take(self, dataset: Any, features: list[Any], n: int) -> tuple[Any, list[Any]]:
        """The first `n` examples of `dataset` and their features."""
        return dataset.with_items(dataset.items[:n]), features[:n]

    # --- model ----------------------------------------------------------------------------------
    def head_options(self, model: ModelConfig, tokenizer: Any,
                     run: RunConfig | None = None) -> dict[str, Any]:
        """Head settings beyond task and labels, from the run's model config and its tokenizer
        (and the whole run config, for tasks with a section of their own)."""
        return {"dropout": model.dropout, "pooling": model.pooling or "mean"}

    def attach(self, model: nn.Module) -> None:
        """Called once the task model holds its encoder and head (e.g. to tie the head to the
        word embeddings); the default does nothing."""

    def init_pretrained(self, model: nn.Module, name: str) -> None:
        """Called once on a fresh task model built on pretrained model `name` (e.g. to start an
        untied output layer from the checkpoint's own); the default does nothing."""

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        """The head: `head(hidden (B, T, H), batch) -> logits`."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective on one batch: by default `loss` of the model's logits."""
        return self.loss(model(**batch), batch)

    def as_classes(self, logits: torch.Tensor,
                   batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits as N supervised choices, (N, C), and their gold classes, (N,): what
        distillation compares (soft and gold labels). Default: the positions whose `labels`
        are not -100 ((B, T) for token tasks, (B,) for sequence tasks)."""
        labels = batch["labels"]
        keep = labels != -100
        return logits[keep], labels[keep]

    def choices(self, model: nn.Module, batch: dict[str, torch.Tensor],
                hidden_states: bool = False) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
        """`model`'s logits on `batch` as its supervised choices (`as_classes`), their gold
        classes, and with `hidden_states` the encoder's hidden states (embeddings + every
        layer; else None): what distillation compares, teacher and student alike."""
        if hidden_states:
            logits, hidden = model.forward_with_hidden(**batch)
        else:
            logits, hidden = model(**batch), None
        return (*self.as_classes(logits, batch), hidden)

    def gather(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per feature of the batch: the log-probabilities decoding needs."""
        raise NotImplementedError

    # --- decoding and scoring -------------------------------------------------------------------
    def decode(self, gathered: list[np.ndarray], dataset: Any, features: list[Any],
               labels: list[str]) -> Predictions:
        """Labels of every example of `dataset` from its features' gathered outputs."""
        raise NotImplementedError

    def gold(self, dataset: Any) -> list[Any]:
        """The gold labels of every example, in the shape `decode` gives."""
        raise NotImplementedError

    def score(self, gold: list[Any], pred: list[Any]) -> dict[str, Any]:
        """Metrics (the headline `metric` among them, in points)."""
        raise NotImplementedError

    def data_bits(self, gold: list[Any], preds: Predictions, labels: list[str]) -> float:
        """Sum over the evaluation set of -log2 p(gold): the data part of a two-part code.

        The default reads `preds.log_probs` by label: a gold entry is one label (log_probs (L,))
        or a list of labels (log_probs (N, L)).
        """
        index = {lab: i for i, lab in enumerate(labels)}
        total = 0.0
        for g, lp in zip(gold, preds.log_probs):
            if isinstance(g, list):
                total -= float(sum(lp[t, index[tag]] for t, tag in enumerate(g)))
            else:
                total -= float(lp[index[g]])
        return total / np.log(2)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        """The Markdown evaluation report of one model on one file."""
        raise NotImplementedError

    # --- prediction on new input ----------------------------------------------------------------
    def dataset_from_inputs(self, inputs: list[Any]) -> Any:
        """An unlabelled dataset from raw inputs (texts) given to `predict` or the server."""
        raise NotImplementedError

    def format_predictions(self, inputs: list[Any], dataset: Any, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        """One JSON-ready result per input."""
        raise NotImplementedError

    def annotate_file(self, path: str | Path, run: Callable[[Any], Predictions]) -> str:
        """A file of this task's format returned with a predicted label column."""
        raise ConfigError(f"task {self.name!r} cannot annotate a file; give texts or --file")

    # --- probing (description length) -----------------------------------------------------------
    def probe_vectors(self, batches: Iterable[tuple[list[int], torch.Tensor, dict]],
                      features: list[Any], dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per example: frozen-encoder vectors (N_i, H) and label ids (N_i,) for a linear probe;
        `batches` yields (feature indices, hidden states (B, T, H), batch)."""
        raise NotImplementedError


def encode_for(task: Task, dataset: Any, tokenizer: Any, labels: list[str], data: Any,
               head: Any = None) -> list[Any]:
    """`task.encode`, given the model's head config where the task's inputs depend on it (a
    generative task's prompt); a task written before `encode` took `head` still works."""
    if task.generative:
        return task.encode(dataset, tokenizer, labels, data, head=head)
    return task.encode(dataset, tokenizer, labels, data)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence from hidden states (B, T, H) and the attention mask (B, T):
    "mean" over real sub-words, "cls" the first position, "last" the last real sub-word (the
    last 1 of the mask, so right and left padding alike); (B, H)."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)  # (T,)
        last = (mask.long() * positions).argmax(dim=1)  # (B,) the last unmasked position
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def _unknown(tag: str, labels: list[str]) -> str:
    return (f"label {tag!r} never occurs in the training data (known: {', '.join(labels)}); "
            "fix the label or add examples of it to the training file")
