"""The train command's options: generated from the typed configs, in any order, with help."""

from __future__ import annotations

from pathlib import Path

import pytest

from occamtune.cli import build_parser, main, subcommands
from occamtune.cli.options import config_overrides
from occamtune.config import config_keys, load_config
from occamtune.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def overrides(argv: list[str]) -> list[str]:
    parser = build_parser()
    args, extras = parser.parse_known_args(["train", *argv])
    sub = subcommands(parser)["train"]
    return config_overrides(args, extras, sub)


def test_every_config_key_is_an_option_with_its_default_in_the_help() -> None:
    sub = subcommands(build_parser())["train"]
    text = sub.format_help()
    for key in config_keys():
        if key.key != "overwrite":
            assert f"--{key.key}" in text
        assert key.doc, f"{key.key} has no description in its config's docstring"
    assert "(default: 0.0001" in text and "(default: 128" in text


def test_options_and_overrides_in_any_order() -> None:
    got = overrides(["train.threads=1", "--output", "x", "train.lr=3e-5", "--epochs", "2",
                     "--train.patience", "5", "--data.max_length=64"])
    cfg = load_config(None, got)
    assert (cfg.train.threads, cfg.output, cfg.train.lr, cfg.train.epochs) == (1, "x", 3e-5, 2.0)
    assert (cfg.train.patience, cfg.data.max_length) == (5, 64)


def test_short_flags_reach_their_keys() -> None:
    cfg = load_config(None, overrides(["--threads", "1", "--max-train", "100", "--max-dev", "10",
                                       "--dev-fraction", "0.2", "--train", "a.txt", "--dev", "b.txt"]))
    assert (cfg.train.threads, cfg.data.max_train, cfg.data.max_dev) == (1, 100, 10)
    assert (cfg.data.dev_fraction, cfg.data.train, cfg.data.dev) == (0.2, "a.txt", "b.txt")


def test_a_negative_number_is_a_value_not_an_option() -> None:
    with pytest.raises(ConfigError, match="train.lr must be .*> 0, got -0.0001"):
        load_config(None, overrides(["--lr", "-1e-4"]))


@pytest.mark.parametrize(("word", "hint"), [("lr=1e-4", "train.lr"), ("train.lrr=1", "train.lr"),
                                            ("--train.lrr", "--train.lr"), ("--epoch", "--epochs")])
def test_unknown_keys_and_flags_name_the_nearest(word: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f"did you mean {hint}"):
        overrides([word, "1"] if word.startswith("--") else [word])


def test_a_folder_plus_a_split_override(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text((FIXTURES / "conll_tiny" / "train.txt").read_text())
    code = main(["train", "--data", str(data), "--test", str(FIXTURES / "conll_tiny" / "test.txt"),
                 f"model.name={tiny_model_dir}", "--output", str(tmp_path / "run"), "--epochs", "1",
                 "--quiet", "train.batch_size=4", "--max-length", "32", "--dev-fraction", "0.3"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "no dev file: held out" in err and "data.dev_seed=13" in err
    assert (tmp_path / "run" / "eval_test.json").is_file()


def test_the_dev_split_does_not_depend_on_the_training_seed() -> None:
    from occamtune.tasks import get_task
    from occamtune.train.prepare import read_splits

    def dev(seed: int) -> list:
        cfg = load_config(None, [f"data.train={FIXTURES / 'conll_tiny' / 'train.txt'}",
                                 f"train.seed={seed}"])
        return [s.line for s in read_splits(get_task("ner"), cfg.data)["dev"].dataset.items]

    assert dev(1) == dev(2)


def test_caps_keep_the_first_examples(capsys) -> None:
    from occamtune.tasks import get_task
    from occamtune.train.prepare import read_splits

    cfg = load_config(None, [f"data.path={FIXTURES / 'conll_tiny'}", "data.max_train=3"])
    splits = read_splits(get_task("ner"), cfg.data)
    assert splits["train"].size == 3 and "using the first 3" in capsys.readouterr().err


def test_data_command_shows_splits_and_problems(tmp_path: Path, capsys) -> None:
    import json

    assert main(["data", str(FIXTURES / "conll_tiny")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["splits"]) == {"train", "dev", "test"}
    assert report["splits"]["train"]["scheme"] == "IOB2" and report["splits"]["train"]["labels"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_text("John B-PER\nsmith\n")
    assert main(["data", str(bad)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert "line 2" in report["problems"][0]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("occamtune ")
