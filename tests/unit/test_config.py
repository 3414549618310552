from pathlib import Path

import pytest

from occamtune.config import RunConfig, dump_config, load_config
from occamtune.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)
    assert load_config(None, []) != cfg or path.name == "default.yaml"


def test_dotted_override_changes_value_and_type() -> None:
    cfg = load_config(CONFIGS[0], ["train.lr=1e-4", "train.epochs=2", "data.max_length=64"])
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 2.0
    assert cfg.data.max_length == 64


def test_exponent_without_a_dot_in_a_yaml_file_is_a_number(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("task: ner\ntrain:\n  lr: 1e-4\n  ema: 9.9e-1\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.train.ema == pytest.approx(0.99)
    with pytest.raises(ConfigError, match="train.lr.*must be float"):
        load_config(None, ["train.lr=fast"])


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"train.lrr.*train.lr"):
        load_config(None, ["train.lrr=1"])


def test_bad_value_names_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"train.optimizer.*'adam'"):
        load_config(None, ["train.optimizer=adam"])
    with pytest.raises(ConfigError, match=r"train.batch_size.*must be int"):
        load_config(None, ["train.batch_size=big"])


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["task=classify", "train.lr=3e-5"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(("override", "field"), [
    ("train.max_steps=-5", "train.max_steps"), ("train.eval_batch_size=0", "train.eval_batch_size"),
    ("train.epochs=.inf", "train.epochs"), ("train.lr=.nan", "train.lr"),
    ("train.head_lr=0", "train.head_lr"), ("train.eval_every=-1", "train.eval_every"),
    ("train.threads=-2", "train.threads"), ("train.momentum=1.5", "train.momentum"),
    ("train.max_grad_norm=-1", "train.max_grad_norm"), ("train.weight_decay=.inf", "train.weight_decay"),
    ("data.dev_fraction=0", "data.dev_fraction"), ("model.dropout=1", "model.dropout"),
    ("model.pooling=max", "model.pooling"),
])
def test_every_bad_value_is_refused_before_any_work(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_the_sst2_config_is_the_plain_defaults() -> None:
    """The SST-2 benchmark's occamtune side runs configs/sst2.yaml: it sets nothing the defaults
    do not (apart from where the data is and goes), so its result is the defaults' result."""
    import dataclasses

    shipped = load_config(CONFIGS[0].parent / "sst2.yaml")
    plain = load_config(None, ["task=classify"])
    # unset pooling is the model's own default: mean for an encoder such as MiniLM
    assert shipped.model.pooling == "mean" and plain.model.pooling is None
    plain.model.pooling = "mean"
    for section in ("model", "train"):
        assert dataclasses.asdict(getattr(shipped, section)) == dataclasses.asdict(getattr(plain, section))
    ignore = {"path"}
    data = {k: v for k, v in dataclasses.asdict(shipped.data).items() if k not in ignore}
    assert data == {k: v for k, v in dataclasses.asdict(plain.data).items() if k not in ignore}
