"""A whole run on families other than BERT (decoders, DistilBERT, and the encoder stacks of the
encoder-decoders T5 and BART): train, compress through the layout methods, evaluate the
artifact (the model folders saved as a hub model would be, the tiny tokenizer beside them)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PIPELINE = ("distill(layers=1, epochs=1), structured(heads=0.5, ffn=0.5, epochs=0), "
            "vocab(positions=true), quantize(bits=4, rounding=gptq)")


def _model_dir(family: str, folder: Path) -> Path:
    import torch
    import transformers as tf

    from tests.fixtures.tiny import tiny_tokenizer

    tok = tiny_tokenizer(folder / "vocab")
    n = len(tok)
    configs = {
        "llama": lambda: tf.LlamaConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2,
                                        intermediate_size=64, max_position_embeddings=128,
                                        pad_token_id=0),
        "gpt2": lambda: tf.GPT2Config(vocab_size=n, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                                      n_positions=128, pad_token_id=0, bos_token_id=1,
                                      eos_token_id=1),
        "t5": lambda: tf.T5Config(vocab_size=n, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                  num_heads=4, relative_attention_num_buckets=8,
                                  pad_token_id=0, decoder_start_token_id=0),
        "bart": lambda: tf.BartConfig(vocab_size=n, d_model=32, encoder_layers=2, decoder_layers=1,
                                      encoder_attention_heads=4, decoder_attention_heads=4,
                                      encoder_ffn_dim=64, decoder_ffn_dim=64,
                                      max_position_embeddings=128, pad_token_id=0),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=n, dim=32, n_layers=2, n_heads=4,
                                                  hidden_dim=64, max_position_embeddings=128),
    }
    torch.manual_seed(0)
    tf.AutoModel.from_config(configs[family]()).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("task, data", [("ner", "conll_tiny"), ("classify", "sst_tiny")])
@pytest.mark.parametrize("family", ["llama", "gpt2", "distilbert", "t5", "bart"])
def test_train_compress_evaluate(family: str, task: str, data: str, tmp_path: Path) -> None:
    from occamtune.api import compress_run, evaluate, train
    from occamtune.compress import artifact_bytes
    from occamtune.config import load_config

    model = _model_dir(family, tmp_path / "model")
    run, small = tmp_path / "run", tmp_path / "small"
    cfg = load_config(None, [f"task={task}", f"data.path={FIXTURES / data}", f"model.name={model}",
                             f"output={run}", "train.batch_size=4", "train.epochs=1",
                             "data.max_length=32", "data.stride=4"])
    train(cfg, progress=False)
    compress_run(str(run), PIPELINE, str(small))
    metrics = evaluate(str(small), split="test")
    assert metrics["n"] == 8 and ("f1" in metrics or "accuracy" in metrics), metrics
    weights = sum(p.stat().st_size for p in run.glob("*.safetensors"))
    assert 0 < artifact_bytes(small) < weights / 4, (artifact_bytes(small), weights)
