"""Text generation with a task model whose head is a language-model output layer (the generate
task): transformers' `generate` on the model's own modules (greedy or beam search, repetition
controls, the key/value cache, left-padded batches), streamed generation, and the references'
cost under teacher forcing (the data part of the description length)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune.config import DECODING
from occamtune.models.families import find_family
from occamtune.tasks import Predictions
from occamtune.tasks.generate import IGNORE, GenerateTask


class _HeadAsOutput(nn.Module):
    """The task head in the place of a transformers causal LM's `lm_head` (hidden -> logits)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)


def predict_generated(model: nn.Module, dataset: Any, features: list[dict[str, Any]],
                      batch_size: int) -> Predictions:
    """The generated text of every example; with references, each one's teacher-forced cost
    (nats, as a one-element log-probability) for the data code length."""
    texts = generate_texts(model, features, batch_size)
    if dataset.items and all(ex.references for ex in dataset.items):
        return Predictions(texts, [np.array([-v]) for v in target_nll(model, features, batch_size)])
    return Predictions(texts, [np.zeros(0) for _ in texts])


def causal_lm(model: nn.Module) -> Any:
    """A transformers causal LM made of the task model's own modules (its decoder stack and its
    head), for `generate`: beam search, repetition controls and the key/value cache come from
    transformers. Built on the meta device: it holds no weights of its own."""
    from transformers import AutoModelForCausalLM

    if hasattr(model, "causal_lm"):  # an ONNX export's decoding step (occamtune.onnx_generate)
        return model.causal_lm()
    if getattr(model, "seq2seq", False):  # a whole encoder-decoder generates by itself
        return model.encoder
    encoder = model.encoder
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(encoder.config)
    setattr(lm, lm.base_model_prefix, encoder)
    lm.lm_head = _HeadAsOutput(model.head)
    lm.eval()
    return lm


def cache_ready(encoder: nn.Module) -> bool:
    """Number the layers 0..L-1 for the key/value cache (a distilled student keeps the
    teacher's numbers); False when a layer module is used twice (cross-layer sharing), whose
    two uses would write one cache slot."""
    family = find_family(encoder)
    if family is None:
        return True
    layers = family.get_layers(encoder)
    if len({id(layer) for layer in layers}) < len(layers):
        return False
    for i, layer in enumerate(layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = i
    encoder.config.num_hidden_layers = len(layers)
    return True


def decoding(model: nn.Module) -> dict[str, Any]:
    """`generate`'s settings for the run: its decoding options, EOS, padding, the cache."""
    extra = model.head_config.extra
    settings = {k: extra[k] for k in DECODING}
    if not settings["no_repeat_ngram_size"]:
        settings.pop("no_repeat_ngram_size")
    settings = {**settings, "do_sample": False, "eos_token_id": int(extra["eos_id"]),
                "pad_token_id": _pad_id(model)}
    if getattr(model, "seq2seq", False):
        return {**settings, "decoder_start_token_id": int(extra["decoder_start"]), "use_cache": True}
    return {**settings, "use_cache": not hasattr(model, "encoder") or cache_ready(model.encoder)}


def _pad_id(model: nn.Module) -> int:
    if not hasattr(model, "encoder"):  # an ONNX export: its metadata keeps the pad id
        return int(model.pad_id)
    return int(getattr(model.encoder.config, "pad_token_id", None) or 0)


def stream_text(model: nn.Module, feature: dict[str, Any]) -> Iterator[str]:
    """The generated text of one feature, piece by piece as it is written (transformers'
    `TextIteratorStreamer`, generation in a thread). Beam search knows its text only at the end:
    with beams, the whole text comes as one piece."""
    from threading import Thread

    from transformers import TextIteratorStreamer

    if int(model.head_config.extra["num_beams"]) > 1:
        yield generate_texts(model, [feature], 1)[0]
        return
    tok = feature["tokenizer"]
    lm, settings = causal_lm(model), decoding(model)
    ids = torch.tensor([feature["input_ids"][: feature["prompt"]]])
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)

    def run() -> None:
        with torch.inference_mode():
            lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                        **settings)

    thread = Thread(target=run, daemon=True)
    thread.start()
    yield from streamer
    thread.join()


def generate_texts(model: nn.Module, features: list[dict[str, Any]], batch_size: int) -> list[str]:
    """The generated text of every feature (its prompt; an encoder-decoder's source), in order;
    batches of similar prompt lengths, left-padded for a decoder."""
    if not features:
        return []
    extra = model.head_config.extra
    tok = features[0]["tokenizer"]
    lm, settings = causal_lm(model), decoding(model)
    pad = settings["pad_token_id"]
    seq2seq = getattr(model, "seq2seq", False)
    # beams multiply the rows of a batch
    batch_size = max(1, batch_size // max(1, int(extra["num_beams"])))
    order = sorted(range(len(features)), key=lambda i: -features[i]["prompt"])
    out: list[str] = [""] * len(features)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            prompts = [features[i]["input_ids"][: features[i]["prompt"]] for i in idx]
            width = max(len(p) for p in prompts)
            # a decoder continues its prompt: left padding; an encoder reads its source with
            # positions from 0 (BERT's absolute positions): right padding
            fill = [(width - len(p), 0) if not seq2seq else (0, width - len(p)) for p in prompts]
            ids = torch.tensor([[pad] * a + p + [pad] * b for p, (a, b) in zip(prompts, fill)])
            mask = torch.tensor([[0] * a + [1] * len(p) + [0] * b for p, (a, b) in zip(prompts, fill)])
            gen = lm.generate(input_ids=ids, attention_mask=mask, **settings)
            # a decoder returns the prompt and its continuation; an encoder-decoder the
            # decoder's ids alone (its start, special, is dropped with the others)
            for i, row in zip(idx, gen if seq2seq else gen[:, width:]):
                out[i] = tok.decode(row, skip_special_tokens=True).strip()
    return out


def target_nll(model: nn.Module, features: list[dict[str, Any]], batch_size: int) -> list[float]:
    """Per feature: the natural-log cost of its target sub-words under teacher forcing."""
    task = GenerateTask()
    collate = task.collator(_pad_id(model))
    out = [0.0] * len(features)
    # (B, T, V) logits of a 50k vocabulary: a few rows at a time
    step = max(1, min(batch_size, 8))
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    with torch.inference_mode():
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            batch = collate([features[i] for i in idx])
            logits, gold, _ = task.choices(model, batch)  # (N, V), (N,): the target's positions
            picked = torch.log_softmax(logits, dim=-1).gather(-1, gold.unsqueeze(-1)).squeeze(-1)
            rows = (batch["labels"] != IGNORE).nonzero()[:, 0]  # each position's row
            costs = picked.new_zeros(len(idx)).index_add_(0, rows, -picked)
            for i, cost in zip(idx, costs):
                out[i] = float(cost)
    return out
