"""The output folder of a training run: a run killed before its first checkpoint is started again
by the same command; a folder with anything else in it is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from occamtune.api import train
from occamtune.config import dump_config, load_config
from occamtune.errors import ConfigError
from occamtune.train.run import prepare_output


def _config(*extra: str) -> str:
    return dump_config(_cfg(*extra))


def _cfg(*extra: str):
    return load_config(None, ["task=classify", "data.path=/data", *extra])


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    out = tmp_path / "run"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text, encoding="utf-8")
    return out


@pytest.mark.parametrize("files", [
    {"config.yaml": _config()},
    {"config.yaml": _config("overwrite=true"), "metrics.jsonl": "{}\n"},
    {"config.yaml": _config(), "checkpoint/model.safetensors": "half"},  # no state.json yet
    {".config.yaml.tmp123": "half"},
])
def test_a_run_killed_early_starts_again(tmp_path: Path, files: dict[str, str]) -> None:
    out = _folder(tmp_path, files)
    assert prepare_output(out, _cfg()) is False
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.parametrize("files", [
    {"config.yaml": _config("train.lr=0.5")},  # another run's settings
    {"config.yaml": _config(), "notes.txt": "mine"},  # a user's file
    {"config.yaml": "task: [classify\n"},
    {"config.yaml": _config(), "model.safetensors": "x"},  # a finished run
])
def test_anything_else_needs_overwrite(tmp_path: Path, files: dict[str, str]) -> None:
    out = _folder(tmp_path, files)
    with pytest.raises(ConfigError, match="--overwrite"):
        prepare_output(out, _cfg())
    assert sorted(p.name for p in out.iterdir()) == sorted({n.split("/")[0] for n in files})


def test_rerun_after_early_kill_trains(tmp_path: Path, conll_tiny: Path, tiny_model_dir: Path) -> None:
    cfg = load_config(None, ["task=ner", f"data.path={conll_tiny}", f"model.name={tiny_model_dir}",
                             f"output={tmp_path / 'run'}", "train.batch_size=4", "train.max_steps=2",
                             "data.max_length=32", "data.stride=4"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    run = train(cfg, progress=False)  # what the killed run left is no reason to stop
    assert (run.output / "model.safetensors").is_file()


def test_progress_says_no_dev_score_yet_rather_than_minus_infinity(
        tmp_path: Path, conll_tiny: Path, tiny_model_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(None, ["task=ner", f"data.path={conll_tiny}", f"model.name={tiny_model_dir}",
                             f"output={tmp_path / 'run'}", "train.batch_size=4", "train.max_steps=2",
                             "data.max_length=32", "data.stride=4"])
    train(cfg, progress=True)  # stderr is not a terminal here: plain progress lines
    err = capsys.readouterr().err
    assert "best_dev=none yet" in err and "inf" not in err, err
