"""Tasks: for each, the head, the loss, decoding and the metric. Looked up by name in a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from occamtune.errors import ConfigError

if TYPE_CHECKING:
    from occamtune.models import HeadConfig

TASKS: dict[str, Any] = {}


def register_task(name: str):
    """Class decorator: make a task available under `name`."""

    def wrap(cls: type) -> type:
        TASKS[name] = cls()
        return cls

    return wrap


def get_task(name: str) -> Any:
    """The task object registered under `name` (ner, classify)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def build_head(config: HeadConfig, hidden_size: int) -> nn.Module:
    return get_task(config.task).build_head(config, hidden_size)


from occamtune.tasks import classify, ner  # noqa: F401  (registers the tasks)
