"""Errors a user can act on. The CLI prints them as one paragraph and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class OccamError(Exception):
    """Base for errors caused by user input (files, flags, configs), not by a bug."""

    exit_code = 2


class DataError(OccamError):
    """A data file is missing, empty, not UTF-8, or has a malformed line.

    Args:
        path: the file at fault.
        message: what is wrong and how to fix it.
        line: 1-based line number, when the fault is on one line.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(OccamError):
    """A config key, flag or value is wrong; the message names it and the valid choices."""


class OutputError(OccamError):
    """A file or folder cannot be written: read-only, not a folder, or the disk is full."""


class ModelError(OccamError):
    """A model cannot be loaded or does not suit the task (e.g. a slow tokenizer for NER)."""
