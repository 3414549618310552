"""File helpers and progress output."""

from __future__ import annotations

import io

from occamtune.io import LineProgress, progress


def test_progress_to_a_file_is_plain_lines() -> None:
    out = io.StringIO()
    bar = LineProgress(10, "train", "step", interval=0.0, stream=out)
    for _ in range(3):
        bar.update(1)
        bar.set_postfix(loss="0.5")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4
    assert lines[-1].startswith("train: 3/10 steps") and lines[-1].endswith("loss=0.5")


def test_progress_is_lines_when_stderr_is_not_a_terminal(capsys) -> None:
    bar = progress(5, "shrink", "trial")  # pytest captures stderr: not a terminal
    assert isinstance(bar, LineProgress)
    bar.close()
    assert capsys.readouterr().err.startswith("shrink: 0/5 trials")
    assert not isinstance(progress(5, "x", "y", enabled=False), LineProgress)
