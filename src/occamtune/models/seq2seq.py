"""Encoder-decoder generators for the generate task: a pretrained seq2seq model (T5, BART: its
whole `AutoModelForSeq2SeqLM`, not the encoder stack the other tasks use), or an encoder-only
checkpoint warm-started as both halves of a transformers `EncoderDecoderModel` (Rothe et al.
2020, "Leveraging Pre-trained Checkpoints for Sequence Generation Tasks": the decoder is a copy
of the encoder with causal self-attention and new cross-attention layers).

The model computes its own output layer (BART's `lm_head` and `final_logits_bias`, T5's scaled
tied head, BERT's `cls.predictions`), so the task model's head passes its logits on.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from occamtune.errors import ModelError
from occamtune.models.families import is_decoder_only_type
from occamtune.models.gguf import gguf_location


def wants_seq2seq(path: str) -> bool:
    """Whether the generate task runs the model at `path` (resolved) as an encoder-decoder:
    anything that is not a causal decoder (a GGUF file always is one)."""
    from transformers import AutoConfig

    if gguf_location(path):
        return False
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of model {path!r}: {exc}") from exc
    return not is_decoder_only_type(getattr(config, "model_type", ""))


def load_seq2seq(path: str, tokenizer: Any, tie_encoder_decoder: bool = False) -> nn.Module:
    """The pretrained seq2seq model at `path` (resolved), or, for an encoder-only checkpoint,
    an `EncoderDecoderModel` warm-started from it on both sides (`tie_encoder_decoder`: one set
    of weights for both but the cross-attention, Rothe et al.'s "BERTShare"). Its config gets the ids generation
    needs: the decoder's start (the tokenizer's [CLS] or BOS) and the pad id."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        EncoderDecoderModel,
    )
    from transformers.utils import logging as hf_logging

    config = AutoConfig.from_pretrained(path)
    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    # the warm start's new weights (cross-attention, an LM head the checkpoint may lack) are
    # listed by transformers' load report: expected here, and said once in the docs; its
    # loading bars are stray lines in a log
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        if getattr(config, "is_encoder_decoder", False):
            if tie_encoder_decoder:
                raise ModelError(f"{path} is a pretrained encoder-decoder with halves of its own; "
                                 "generate.tie_encoder_decoder ties the halves of an encoder "
                                 "checkpoint warm-started as both: leave it false")
            model = AutoModelForSeq2SeqLM.from_pretrained(path, use_safetensors=True)
        else:
            decoder_config = AutoConfig.from_pretrained(path)
            decoder_config.is_decoder, decoder_config.add_cross_attention = True, True
            decoder, info = AutoModelForCausalLM.from_pretrained(path, config=decoder_config,
                                                                 output_loading_info=True)
            model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, None,
                                                                         decoder_model=decoder)
            model.config.tie_encoder_decoder = tie_encoder_decoder
            tie_halves(model)
            own = {name for name, _ in model.named_parameters()}
            # what the checkpoint lacked (the cross-attention, an LM head's transform): the
            # optimizer gives these train.head_lr, as it gives the task head (train.loop)
            model.fresh_parameters = tuple(sorted(
                name for name in (f"decoder.{k}" for k in info["missing_keys"]) if name in own))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot build an encoder-decoder from {path!r}: {exc}") from exc
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()
    cfg = model.config
    if getattr(cfg, "decoder_start_token_id", None) is None:
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        if start is None:
            raise ModelError(f"{path}: the tokenizer has neither a [CLS] nor a BOS token to start "
                             "the decoder with; set decoder_start_token_id in its config.json")
        cfg.decoder_start_token_id = int(start)
    if getattr(cfg, "pad_token_id", None) is None:
        cfg.pad_token_id = int(tokenizer.pad_token_id)
    return model  # the end id: the run's (GenerateTask.head_options), given to every generate


def seq2seq_from_config(config: Any) -> nn.Module:
    """A randomly initialised seq2seq model of `config` (weights are loaded afterwards), its
    halves tied as the config says."""
    from transformers import AutoModelForSeq2SeqLM

    return tie_halves(AutoModelForSeq2SeqLM.from_config(config))


def tie_halves(model: nn.Module) -> nn.Module:
    """With `config.tie_encoder_decoder`, make every decoder weight that has an encoder
    namesake of the same shape that very tensor: embeddings, self-attention, feed-forward;
    the cross-attention and the output transform stay the decoder's own.

    Why by hand: transformers 5's `EncoderDecoderModel` keeps the flag in its config but no
    longer ties the halves itself."""
    if not getattr(model.config, "tie_encoder_decoder", False) or not hasattr(model, "decoder"):
        return model
    encoder, decoder = model.get_encoder(), model.get_decoder()
    base = getattr(decoder, "base_model", decoder)  # BertLMHeadModel -> its BertModel
    own = dict(encoder.named_parameters())
    for name, param in list(base.named_parameters()):
        twin = own.get(name)
        if twin is not None and twin.shape == param.shape:
            path, _, attr = name.rpartition(".")
            setattr(base.get_submodule(path) if path else base, attr, twin)
    out = decoder.get_output_embeddings()
    if out is not None and getattr(decoder.config, "tie_word_embeddings", True):
        out.weight = decoder.get_input_embeddings().weight  # the output layer follows its table
    return model

