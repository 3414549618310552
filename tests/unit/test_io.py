"""File helpers: an output never overlaps an input, so --overwrite never deletes what is read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from occamtune.errors import ConfigError
from occamtune.io import LineProgress, check_apart, progress


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


def _fail_writes(monkeypatch, prefix: str, errno_: int) -> None:
    """Writes of files whose name starts with `prefix` fail as on a full or read-only disk."""
    import errno
    import os

    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(prefix):
            real(self, data[: len(data) // 2])  # half written, then the disk gives out
            raise OSError(errno_, os.strerror(errno_), str(self))
        return real(self, data)

    assert errno_ in (errno.ENOSPC, errno.EROFS)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_a_full_disk_is_an_output_error_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    import errno

    from occamtune.compress.artifact import save_artifact
    from occamtune.errors import OutputError
    from tests.fixtures.tiny import tiny_tokenizer
    from tests.fixtures.tiny_models import tiny_task_model

    tok = tiny_tokenizer(tmp_path / "tok")
    _fail_writes(monkeypatch, ".model.occ.tmp", errno.ENOSPC)
    with pytest.raises(OutputError, match="model.occ: No space left"):
        save_artifact(tiny_task_model(), tok, tmp_path / "a")
    assert not list((tmp_path / "a").glob(".*tmp*"))


def test_an_output_that_is_a_file_or_unwritable_is_refused_up_front(tmp_path) -> None:
    from occamtune.errors import OutputError
    from occamtune.io import clear_output

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        clear_output(f, overwrite=True)
    with pytest.raises(OutputError, match="cannot write into"):
        clear_output(f / "sub", overwrite=False)  # its parent is a file: nothing can be made
    assert f.read_text() == "x"


def test_evaluate_on_a_read_only_model_keeps_its_scores(tmp_path, monkeypatch, conll_tiny,
                                                        tiny_model_dir) -> None:
    import errno

    from occamtune.api import evaluate, train
    from occamtune.config import load_config

    cfg = load_config(None, [f"data.path={conll_tiny}", f"model.name={tiny_model_dir}",
                             f"output={tmp_path / 'run'}", "train.max_steps=2",
                             "train.batch_size=4", "data.max_length=32"])
    train(cfg, progress=False)
    _fail_writes(monkeypatch, ".eval_", errno.EROFS)
    metrics = evaluate(tmp_path / "run", split="dev")
    assert "f1" in metrics and "Read-only" in metrics["not_written"]
    assert "files" not in metrics
    assert not list((tmp_path / "run").glob(".*tmp*"))


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
