"""File helpers every layer uses: atomic writes and output folders that never lose a user's files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from occamtune.errors import ConfigError, OutputError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file by temp file + rename, so a crash never leaves it half-written."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file by temp file + rename; on failure (read-only, disk full) the temp file is
    removed and an `OutputError` names the file."""
    path = Path(path)
    with writing(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def writing(path: Path) -> Iterator[Path]:
    """A temp path beside `path` to write; renamed into place (the usual file mode) when the
    block ends, removed when it fails. OSError becomes an `OutputError` naming `path`."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        publish(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def clear_output(output: Path, overwrite: bool) -> None:
    """Remove a non-empty output folder when `overwrite`, else refuse with a clear error; then
    make sure the folder can be written, before any work starts."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; give a folder")
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise ConfigError(f"output folder {output} exists and is not empty; pass --overwrite "
                              "to replace it, or choose another --output")
        try:
            shutil.rmtree(output)
        except OSError as exc:
            raise OutputError(f"cannot empty {output}: {exc.strerror or exc}") from exc
    check_writable(output)


def check_writable(folder: Path) -> None:
    """Create `folder` and a probe file in it; an `OutputError` when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write into {folder}: {exc.strerror or exc}") from exc


def check_apart(output: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an output folder that is, contains or lies inside one of the `inputs`.

    `--overwrite` empties the output before writing: an output that is (or holds) an input
    would delete it, and one inside an input would write into the user's data or model.

    Args:
        output: the folder about to be written.
        inputs: what the command reads, by the flag or key that names it (None: not given).

    Raises:
        ConfigError: naming the output, the input and how they overlap.
    """
    out = Path(output).resolve()
    for flag, given in inputs.items():
        if given is None:
            continue
        source = Path(given).resolve()
        if out == source:
            how = "is"
        elif out in source.parents:
            how = "contains"
        elif source in out.parents:
            how = "lies inside"
        else:
            continue
        raise ConfigError(f"--output {output} {how} the input {flag} {given}: writing there "
                          "would destroy or mix with what is read; choose an output folder apart "
                          "from every input")


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temp file into place with the usual permissions (0666 less the umask):
    some writers (safetensors) create their files 0600, unlike every other file of a folder."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def portable_path(value: str | Path) -> str:
    """A path as recorded in files that leave this machine (metadata, cards): an absolute one is
    cut to its last component, so that no local folder layout is published."""
    return Path(value).name if Path(value).is_absolute() else str(value)


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


def note(message: str) -> None:
    """A line for the user on standard error (standard output stays the command's result)."""
    import sys

    print(f"occamtune: note: {message}", file=sys.stderr)

