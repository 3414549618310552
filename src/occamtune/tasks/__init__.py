"""Tasks: each one a module with a `Task` subclass (see `base.py` for the protocol)."""

from occamtune.tasks import classify, generate, ner, qa, relation  # noqa: F401  (registers the built-in tasks)
from occamtune.tasks.base import TASKS, Examples, Predictions, Task, get_task, register_task

__all__ = ["TASKS", "Examples", "Predictions", "Task", "get_task", "register_task"]
