"""File helpers: an output never overlaps an input, so --overwrite never deletes what is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from occamtune.errors import ConfigError
from occamtune.io import check_apart


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "keep.txt").write_text("user data")
    return path


@pytest.mark.parametrize(("output", "how"), [("in", "is"), (".", "contains"),
                                            ("in/sub", "lies inside")])
def test_check_apart_names_the_overlap(tmp_path, monkeypatch, output, how) -> None:
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "in")
    with pytest.raises(ConfigError, match=f"--output {output} {how} the input --data"):
        check_apart(output, {"--data": tmp_path / "in", "--other": None})
    check_apart("elsewhere", {"--data": "in"})
    check_apart("in2", {"--data": "in"})  # a shared prefix is not an overlap


def test_compress_and_export_refuse_to_overwrite_their_input(tmp_path) -> None:
    from occamtune.api import compress_run, export

    run = _folder(tmp_path / "run")
    with pytest.raises(ConfigError, match="is the input model"):
        compress_run(run, "quantize(bits=8)", run, overwrite=True)
    with pytest.raises(ConfigError, match="contains the input model"):
        export(run, tmp_path, overwrite=True)
    assert (run / "keep.txt").is_file()


def test_train_refuses_an_output_that_is_its_data(tmp_path, conll_tiny) -> None:
    import shutil

    from occamtune.api import train
    from occamtune.config import load_config

    data = tmp_path / "data"
    shutil.copytree(conll_tiny, data)
    cfg = load_config(None, [f"data.path={data}", f"output={data}", "overwrite=true"])
    with pytest.raises(ConfigError, match="is the input data.path"):
        train(cfg, progress=False)
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in conll_tiny.iterdir())


def test_shrink_refuses_an_output_inside_its_run(tmp_path) -> None:
    from occamtune.api import shrink

    run = _folder(tmp_path / "run")
    with pytest.raises(ConfigError, match="lies inside the input run"):
        shrink(run, run / "search", budget_trials=1)
