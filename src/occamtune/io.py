"""File helpers every layer uses: atomic writes and output folders that never lose a user's files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


class LineProgress:
    """Progress for a log file: one plain line every `interval` seconds and at the end, where a
    tqdm bar would write a wall of carriage returns. Has tqdm's `update`, `set_postfix`, `close`."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0,
                 interval: float = 30.0, stream: Any = None) -> None:
        import sys
        import time

        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.interval, self.stream = interval, stream or sys.stderr
        self.start = self.last = time.monotonic()
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        import time

        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def set_postfix_str(self, text: str) -> None:
        self.postfix = {"": text}

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        self._line()

    def _line(self) -> None:
        import time

        self.last = time.monotonic()
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        facts = " ".join(f"{k}={v}" if k else str(v) for k, v in self.postfix.items())
        print(f"{self.desc}: {done} {self.unit}s, {self.last - self.start:.0f} s {facts}".rstrip(),
              file=self.stream, flush=True)


def progress(total: int | None, desc: str, unit: str, enabled: bool = True,
             initial: int = 0) -> Any:
    """A progress bar (tqdm) on a terminal; one line per interval when standard error is a file
    or a pipe; nothing when not `enabled`."""
    import sys

    if enabled and not sys.stderr.isatty():
        return LineProgress(total, desc, unit, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                dynamic_ncols=True)
