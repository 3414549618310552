"""Encoder-decoders as task encoders: a tiny random T5 and BART, saved whole as on the hub,
train on NER and classification through the public API on their encoder stacks alone, save
(no decoder weights), and reload with the same predictions; words get the sub-words they have
inside a sentence (T5's `▁`, BART's `Ġ`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import occamtune
from occamtune import inference
from occamtune.config import load_config
from occamtune.data.encode import encode_words, word_prefix
from occamtune.models import load_model, load_tokenizer
from tests.fixtures.tiny_seq2seq import tiny_bart_dir, tiny_t5_dir

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DATA = {"ner": FIXTURES / "conll_tiny", "classify": FIXTURES / "sst_tiny"}
MAKERS = {"t5": tiny_t5_dir, "bart": tiny_bart_dir}
STACKS = {"t5": "T5Stack", "bart": "BartEncoder"}
PREFIX = {"t5": ("", "▁"), "bart": (" ", "Ġ")}  # (word_prefix, mark of a word's start)


@pytest.fixture(scope="module", params=sorted(MAKERS))
def family_dir(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return request.param, MAKERS[request.param](tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("task", ["classify", "ner"])
def test_an_encoder_stack_trains_saves_and_reloads_the_same(task: str, family_dir: tuple,
                                                            tmp_path: Path) -> None:
    from safetensors import safe_open

    family, model_dir = family_dir
    out = tmp_path / "run"
    cfg = load_config(None, [f"task={task}", f"data.path={DATA[task]}", f"model.name={model_dir}",
                             f"output={out}", "train.batch_size=4", "train.max_steps=1",
                             "train.lr=1e-3", "data.max_length=32", "data.stride=4"])
    run = occamtune.train(cfg, progress=False)
    assert type(run.model.encoder).__name__ == STACKS[family]
    model, _, meta = load_model(out)
    assert type(model.encoder).__name__ == STACKS[family]
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        names = weights.keys()
    assert names and not [k for k in names if "decoder" in k]
    test = run.splits["test"]
    before = inference.run_model(run.model.eval(), test.features)
    after = inference.run_model(model, test.features)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-5)
    if task == "classify":
        assert meta.head.pooling == "mean"


def test_words_get_their_in_sentence_sub_words(family_dir: tuple) -> None:
    family, model_dir = family_dir
    prefix, mark = PREFIX[family]
    tok = load_tokenizer(str(model_dir), "ner")
    assert word_prefix(tok) == prefix
    words = ["EU", "rejects", "German", "call"]
    (win,) = encode_words([words], tok, 64)
    assert win.input_ids == tok(prefix + " ".join(words))["input_ids"]
    starts = [tok.convert_ids_to_tokens(i) for i, f in zip(win.input_ids, win.first) if f]
    assert len(starts) == len(words) and all(t.startswith(mark) for t in starts), starts
