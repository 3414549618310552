"""Shared fixtures: a tiny random BERT saved as a Hugging Face model folder, tiny data folders,
a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 random BERT with a fast tokenizer, saved like any hub model folder."""
    import torch
    from transformers import BertConfig, BertModel

    from tests.fixtures.tiny import tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = tiny_tokenizer(folder / "vocab")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture()
def conll_tiny() -> Path:
    return FIXTURES / "conll_tiny"


@pytest.fixture()
def sst_tiny() -> Path:
    return FIXTURES / "sst_tiny"


@pytest.fixture()
def shared_data() -> Path:
    if not (SHARED_DATA / "conll2003" / "train.txt").is_file():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A tiny trained NER run (trained once per session), for the search tests."""
    from occamtune.api import train
    from occamtune.config import load_config

    out = tmp_path_factory.mktemp("search") / "run"
    cfg = load_config(None, ["task=ner", f"data.path={FIXTURES / 'conll_tiny'}",
                             f"model.name={tiny_model_dir}", f"output={out}", "train.batch_size=4",
                             "train.lr=3e-3", "train.epochs=3", "data.max_length=32",
                             "data.stride=4"])
    train(cfg, progress=False)
    return out
