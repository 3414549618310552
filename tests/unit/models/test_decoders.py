"""Decoders as task encoders: a tiny random Llama and GPT-2 (byte-level BPE, no pad token) train
on classification and NER through the public API, save, and reload with the same predictions;
`last` pooling on right-padded batches; words get the sub-words they have inside a sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import occamtune
from occamtune import inference
from occamtune.config import load_config
from occamtune.data.encode import encode_words, word_prefix
from occamtune.data.tokenize import is_uncased
from occamtune.models import default_pooling, is_decoder_only, load_model, load_tokenizer
from occamtune.tasks.base import pool
from tests.fixtures.tiny import tiny_tokenizer
from tests.fixtures.tiny_decoders import tiny_gpt2_dir, tiny_llama_dir

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DATA = {"ner": FIXTURES / "conll_tiny", "classify": FIXTURES / "sst_tiny"}
MAKERS = {"llama": tiny_llama_dir, "gpt2": tiny_gpt2_dir}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def decoder_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return MAKERS[request.param](tmp_path_factory.mktemp(request.param))


def _train(task: str, model: str | Path, out: Path, *extra: str) -> occamtune.Run:
    cfg = load_config(None, [f"task={task}", f"data.path={DATA[task]}", f"model.name={model}",
                             f"output={out}", "train.batch_size=4", "train.max_steps=1",
                             "train.lr=1e-3", "data.max_length=32", "data.stride=4", *extra])
    return occamtune.train(cfg, progress=False)


@pytest.mark.parametrize("task", ["classify", "ner"])
def test_a_decoder_trains_saves_and_reloads_the_same(task: str, decoder_dir: Path,
                                                     tmp_path: Path) -> None:
    run = _train(task, decoder_dir, tmp_path / "run")
    assert run.tokenizer.pad_token == "<|endoftext|>"  # none of its own: the end-of-text token
    model, tok, meta = load_model(tmp_path / "run")
    assert tok.pad_token_id == model.encoder.config.pad_token_id == run.tokenizer.pad_token_id
    assert not hasattr(model.encoder.config, "quantization_config")
    test = run.splits["test"]
    before = inference.run_model(run.model.eval(), test.features)
    after = inference.run_model(model, test.features)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-5)
    texts = ["EU rejects German call to boycott British lamb ."]
    assert occamtune.predict(tmp_path / "run", texts) == occamtune.load(tmp_path / "run").predict(texts)
    if task == "classify":
        assert meta.head.pooling == "last"  # the decoders' default


def test_the_default_pooling_is_last_for_decoders_and_mean_for_encoders(
        decoder_dir: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoConfig

    assert default_pooling(AutoConfig.from_pretrained(decoder_dir)) == "last"
    assert default_pooling(AutoConfig.from_pretrained(tiny_model_dir)) == "mean"
    assert is_decoder_only(AutoConfig.from_pretrained(decoder_dir))


def test_a_decoder_keeps_no_key_value_cache_and_refuses_cls_pooling(decoder_dir: Path) -> None:
    from occamtune.errors import ModelError
    from occamtune.models import HeadConfig, TaskModel, load_encoder

    encoder = load_encoder(str(decoder_dir))
    assert encoder.config.use_cache  # as saved: the task model turns the cache off per call
    model = TaskModel(encoder, HeadConfig(task="classify", labels=["a", "b"], pooling="last"))
    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    assert model.encode(batch).past_key_values is None
    with pytest.raises(ModelError, match="pooling 'cls' reads position 0"):
        TaskModel(encoder, HeadConfig(task="classify", labels=["a", "b"], pooling="cls"))


def test_an_explicit_pooling_wins(decoder_dir: Path, tmp_path: Path) -> None:
    run = _train("classify", decoder_dir, tmp_path / "run", "model.pooling=mean")
    assert run.model.head_config.pooling == "mean"


def test_last_pooling_reads_the_last_real_token_of_right_padded_rows() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)  # (B, T, H)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert torch.equal(pool(hidden, mask, "last"), torch.stack([hidden[0, 3], hidden[1, 1]]))
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])  # left padding too
    assert torch.equal(pool(hidden, left, "last"), torch.stack([hidden[0, 3], hidden[1, 3]]))


def test_a_right_padded_batch_gives_each_text_its_logits_alone(decoder_dir: Path,
                                                              tmp_path: Path) -> None:
    run = _train("classify", decoder_dir, tmp_path / "run")
    model = run.model.eval()
    collate = occamtune.tasks.get_task("classify").collator(model.encoder.config.pad_token_id)
    from occamtune.data.encode import encode_texts

    feats = encode_texts(["a great film .", "it is not very good at all , boring ."],
                         run.tokenizer, 32)
    with torch.no_grad():
        batch = collate(feats)
        assert batch["attention_mask"][0, -1] == 0  # the short text is right-padded
        together = model(**batch)
        alone = torch.cat([model(**collate([f])) for f in feats])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_words_get_their_in_sentence_sub_words(decoder_dir: Path, tmp_path: Path) -> None:
    tok = load_tokenizer(str(decoder_dir), "ner")
    assert word_prefix(tok) == " "
    words = ["EU", "rejects", "German", "call"]
    (win,) = encode_words([words], tok, 64)
    in_sentence = tok(" " + " ".join(words), add_special_tokens=False)["input_ids"]
    assert win.input_ids == in_sentence  # each word as inside the sentence, 'Ġ' included
    assert tok.convert_ids_to_tokens(win.input_ids[0]).startswith("Ġ")
    assert not is_uncased(tok)  # cased: NER keeps case and needs no shape features
    assert word_prefix(tiny_tokenizer(tmp_path / "bert")) == ""
