"""A tiny trained NER run, shared by the search tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    from occamtune.api import train
    from occamtune.config import load_config

    out = tmp_path_factory.mktemp("search") / "run"
    cfg = load_config(None, ["task=ner", f"data.path={FIXTURES / 'conll_tiny'}",
                             f"model.name={tiny_model_dir}", f"output={out}", "train.batch_size=4",
                             "train.lr=3e-3", "train.epochs=3", "data.max_length=32",
                             "data.stride=4"])
    train(cfg, progress=False)
    return out
