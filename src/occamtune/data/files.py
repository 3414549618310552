"""Text files read as lines, in the encoding the user names, with errors that name the file."""

from __future__ import annotations

import codecs
from pathlib import Path

from occamtune.errors import DataError


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """Read a text file as lines, with errors that name the file.

    Lines are split on "\\n" only (a trailing "\\r" is dropped), so line numbers match what an
    editor shows; a byte-order mark is ignored.

    Args:
        path: the file.
        encoding: its text encoding (`data.encoding`), any name Python's codecs know.

    Returns:
        The lines, without line ends.

    Raises:
        DataError: the file is missing, is a folder, cannot be read, or is not in `encoding`
            (the message names the line of the first bad byte and the `data.encoding` option).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist; check the path")
    if path.is_dir():
        raise DataError(path, "is a folder, expected a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
        raise DataError(path, f"byte 0x{raw[exc.start]:02x} is not {name}; say the file's "
                              "encoding with data.encoding=NAME (e.g. data.encoding=latin-1), "
                              "or re-encode it (iconv -f latin1 -t utf-8)", line=line) from exc
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]
