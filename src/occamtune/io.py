"""File helpers every layer uses: atomic writes and output folders that never lose a user's files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from occamtune.errors import ConfigError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file by temp file + rename, so a crash never leaves it half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def clear_output(output: Path, overwrite: bool) -> None:
    """Remove a non-empty output folder when `overwrite`, else refuse with a clear error."""
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise ConfigError(f"output folder {output} exists and is not empty; pass --overwrite "
                              "to replace it, or choose another --output")
        shutil.rmtree(output)
