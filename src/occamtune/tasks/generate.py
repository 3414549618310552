"""Text generation (summarization, dialogue summarization, translation) with a decoder-only model.

The model reads a prompt (an instruction and the source text, in the model's chat template where
its tokenizer has one) and learns to continue it with the target: the loss counts the target's
sub-words alone. The head is the language-model output layer (tied to the word embeddings where
the pretrained model ties them). Predictions are decoded by transformers' `generate` (greedy or
beam search, with a key/value cache, prompts left-padded), scored with ROUGE (`rouge-score`) and
BLEU/chrF (`sacrebleu`); the data code length is the target's cost under teacher forcing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from occamtune.config import DECODING
from occamtune.data.encode import IGNORE
from occamtune.errors import ConfigError, ModelError
from occamtune.io import note
from occamtune.tasks.base import Predictions, Task, register_task
from occamtune.tasks.tables import md_table

LOGIT_FLOOR = -1e4  # the logit of a token a trimmed vocabulary cannot write
SUMMARIZE = "Summarize the following text in one sentence."
ANSWER = "\n\nSummary:"  # the prompt's end for a model without a chat template
_SOURCE = "\ue000"  # a private-use character marks where the source goes in the template


class LMHead(nn.Module):
    """The next-token output layer, (B, T, H) -> (B, T, V).

    Tied (`extra["tied"]`): the encoder's word-embedding matrix, read at every call, so that a
    compression method that replaces the embeddings changes the output layer with them; the
    head then holds no weights of its own. Untied: its own `out` Linear.
    """

    def __init__(self, config: Any, hidden_size: int) -> None:
        super().__init__()
        self.tied = bool(config.extra.get("tied", True))
        self.out = None if self.tied else nn.Linear(hidden_size, int(config.extra["vocab_size"]),
                                                    bias=False)
        # the encoder, as a plain attribute: a submodule would save its weights twice
        self.__dict__["_encoder"] = None

    def tie(self, encoder: nn.Module) -> None:
        self.__dict__["_encoder"] = encoder

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        if self.out is not None:
            return self.out(hidden)
        table = self.__dict__["_encoder"].get_input_embeddings()
        logits = F.linear(hidden, table.weight)  # (B, T, rows)
        kept = getattr(table, "kept_ids", None)
        if kept is None or kept.numel() == 0:
            return logits
        return spread_logits(logits, kept, table.num_embeddings)


def spread_logits(logits: torch.Tensor, kept: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(..., V) logits from a trimmed vocabulary's (..., rows), the row j scoring id kept[j]
    (compress `vocab`); the other ids get a floor far below (finite, so that a reference using
    one costs much, not infinitely). A scatter, not an indexed assignment: the ONNX tracer
    writes the latter as an invalid graph."""
    floor = logits.new_full((1,) * (logits.dim() - 1) + (vocab_size,), LOGIT_FLOOR)
    index = kept.expand(*logits.shape[:-1], -1)
    return floor.expand(*logits.shape[:-1], -1).scatter(-1, index, logits)


class LogitsHead(nn.Module):
    """The head of a whole encoder-decoder: the model's own output layer already made the
    logits (`TaskModel.encode` gives them as its last state); they pass on unchanged."""

    out = None

    def forward(self, logits: torch.Tensor, batch: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return logits


@register_task
class GenerateTask(Task):
    """Source text -> target text (summaries, translations), scored by ROUGE-L: a decoder
    continues a prompt, or an encoder-decoder (T5, BART, an encoder warm-started as both halves)
    reads the source and writes the target.

    Reads JSON lines (or Parquet, a `datasets` folder) with a source and a target column
    (`data.input_field` / `data.label_field`; lists of sentences are joined, several targets are
    several references), or parallel text files `NAME.<input_field>` / `NAME.<label_field>`
    (`data.input_field=de data.label_field=en` for `train.de` and `train.en`).
    """

    name = "generate"
    metric = "rougeL"
    headline = ("rougeL", "rouge1", "rouge2", "bleu", "chrf")
    description = "text generation (summaries, translation) with a decoder, scored by ROUGE-L"
    generative = True

    # --- data -----------------------------------------------------------------------------------
    def data_suffix(self, data: Any) -> str | None:
        return f".{data.input_field}" if _parallel(data) else None

    def read(self, path: str | Path, data: Any = None, has_labels: bool = True) -> Any:
        from occamtune.config import DataConfig
        from occamtune.data.pairs import read_pairs

        data = data or DataConfig()
        return read_pairs(path, data.encoding, data.input_field, data.label_field, has_labels)

    def label_set(self, dataset: Any) -> list[str]:
        return []  # the output is text: the vocabulary is the label set

    def example_labels(self, example: Any) -> list[str]:
        return []

    def encode(self, dataset: Any, tokenizer: Any, labels: list[str], data: Any,
               head: Any = None) -> list[Any]:
        if head is None:
            raise ConfigError("the generate task's inputs depend on the model's prompt settings: "
                              "pass the model's head config (head=model.head_config)")
        if head.extra.get("seq2seq"):
            return encode_seq2seq(dataset, tokenizer, head.extra, data.max_length)
        return encode_pairs(dataset, tokenizer, head.extra, data.max_length)

    def collator(self, pad_id: int) -> Any:
        from occamtune.data.encode import Collator

        collate = Collator(pad_id=pad_id)

        def run(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            if "decoder_input_ids" not in items[0]:
                return collate(items)
            # the two sides of an encoder-decoder pad to their own widths
            source = collate([{"input_ids": x["input_ids"]} for x in items])
            target = collate([{"input_ids": x["decoder_input_ids"], "labels": x["labels"]}
                              for x in items])
            return {"input_ids": source["input_ids"], "attention_mask": source["attention_mask"],
                    "decoder_input_ids": target["input_ids"],
                    "decoder_attention_mask": target["attention_mask"], "labels": target["labels"]}

        return run

    # --- model ----------------------------------------------------------------------------------
    def head_options(self, model: Any, tokenizer: Any, run: Any = None) -> dict[str, Any]:
        from occamtune.config import GenerateConfig

        gen = run.generate if run is not None else GenerateConfig()
        data = run.data if run is not None else None
        instruction = gen.instruction or _default_instruction(data)
        # BERT-style tokenizers end a text with [SEP] and have no EOS
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        extra = {"instruction": instruction, "chat": bool(getattr(tokenizer, "chat_template", None)),
                 "eos_id": eos, **{k: getattr(gen, k) for k in DECODING}}
        return {"dropout": 0.0, "pooling": "last", "extra": extra}

    def build_head(self, config: Any, hidden_size: int) -> nn.Module:
        return LMHead(config, hidden_size)

    def attach(self, model: nn.Module) -> None:
        extra = model.head_config.extra
        if extra.get("eos_id") is None:
            raise ModelError("the tokenizer has no end-of-sequence token; a generator must learn "
                             "where its text ends: give the model folder's tokenizer an eos_token")
        if model.seq2seq:
            extra["seq2seq"] = True
            extra["decoder_start"] = int(model.encoder.config.decoder_start_token_id)
            model.head = LogitsHead()
            return
        if not model.decoder_only:
            raise ModelError(
                f"the generate task needs a decoder-only model (Llama, Qwen2, GPT-2, SmolLM2: "
                f"--model smollm2) or a whole encoder-decoder (T5, BART, or an encoder "
                f"warm-started as both halves, as `occamtune train --task generate` builds "
                f"from an encoder checkpoint); {type(model.encoder).__name__} "
                f"({model.encoder.config.model_type!r}) is neither")
        if "tied" not in extra:  # a fresh head: as the pretrained model has its output layer
            extra["tied"] = bool(getattr(model.encoder.config, "tie_word_embeddings", True))
            extra["vocab_size"] = int(model.encoder.get_input_embeddings().num_embeddings)
            model.head = LMHead(model.head_config, model.encoder.config.hidden_size)
        model.head.tie(model.encoder)

    def init_pretrained(self, model: nn.Module, name: str) -> None:
        """Untied models: start the output layer from the checkpoint's own `lm_head` (an
        encoder-decoder has its own)."""
        if getattr(model.head, "out", None) is not None:
            with torch.no_grad():
                model.head.out.weight.copy_(model.pretrained_output_layer(name))

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # `labels` are already the next sub-words (encode shifts them), -100 off the target
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(),
                               ignore_index=IGNORE)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(*self.choices(model, batch)[:2])

    def choices(self, model: nn.Module, batch: dict[str, torch.Tensor],
                hidden_states: bool = False) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
        """The output layer run on the target's positions alone, (N, V) in float32. The prompt's
        positions carry no loss, yet their logits over the whole vocabulary (B x T x V floats,
        with their gradient; the teacher's too in distillation) cost a large share of a step
        when the prompt is long."""
        if not hasattr(model, "encode"):  # a model that gives only its logits
            return super().choices(model, batch, hidden_states)
        labels = batch["labels"]
        keep = labels != IGNORE
        out = model.encode(batch, hidden_states=hidden_states)
        logits = model.head(out.last_hidden_state[keep]).float()
        return logits, labels[keep], out.hidden_states if hidden_states else None

    # --- decoding and scoring (the decoding itself: occamtune.models.generation) ----------------
    def gold(self, dataset: Any) -> list[Any]:
        return [ex.references for ex in dataset.items]

    def score(self, gold: list[Any], pred: list[Any]) -> dict[str, Any]:
        from occamtune.tasks.text_metrics import text_scores

        out = text_scores(gold, pred)
        out["outputs"] = [{"prediction": p, "references": g} for g, p in zip(gold, pred)]
        return out

    def data_bits(self, gold: list[Any], preds: Predictions, labels: list[str]) -> float:
        return -float(sum(lp.sum() for lp in preds.log_probs)) / np.log(2)

    def render(self, metrics: dict[str, Any], source: str) -> str:
        rows = [[k, metrics[k]] for k in ("rouge1", "rouge2", "rougeL", "bleu", "chrf")]
        shown = metrics.get("outputs", [])[:5]
        examples = [md_table(["generated", "reference"],
                             [[_cell(o["prediction"]), _cell(o["references"][0])] for o in shown])]
        return "\n\n".join([
            f"# Evaluation on {source}",
            (f"ROUGE-L **{metrics['rougeL']:.2f}** (rouge-score, stemmed, best over the "
             f"references); BLEU {metrics['bleu']:.2f} and chrF {metrics['chrf']:.2f} "
             f"(sacrebleu). Generated texts average {metrics['mean_words']:.1f} words; "
             f"{metrics['distinct']:.0f}% of them are distinct"
             + (f", {metrics['repeated']:.1f}% of their word trigrams repeat one of the same "
                "text" if "repeated" in metrics else "")
             + f". Data code length {metrics['data_bits']:.0f} bits over {metrics['n']} "
             "examples (the references' sub-words under teacher forcing)."),
            *([f"Decoding: {_decoding_text(metrics['decoding'])}."] if "decoding" in metrics
              else []),
            md_table(["score", "points"], rows),
            "## The first generated texts (all of them are in the JSON file)",
            *examples,
        ]) + "\n"

    # --- prediction on new input ----------------------------------------------------------------
    def dataset_from_inputs(self, inputs: list[Any]) -> Any:
        from occamtune.data.pairs import Pair, PairDataset

        return PairDataset([Pair(str(t), [], i + 1) for i, t in enumerate(inputs)], "<input>")

    def format_predictions(self, inputs: list[Any], dataset: Any, preds: Predictions,
                           labels: list[str]) -> list[dict[str, Any]]:
        return [{"text": t, "generated": g} for t, g in zip(inputs, preds.labels)]

    def probe_vectors(self, batches: Iterable[tuple[list[int], torch.Tensor, dict]],
                      features: list[Any], dataset: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        raise ConfigError("a linear probe needs a label set; the generate task writes text")


def _decoding_text(decoding: dict[str, Any]) -> str:
    beams = decoding["num_beams"]
    parts = ["greedy" if beams == 1 else
             f"beam search, {beams} beams, length penalty {decoding['length_penalty']}",
             f"at most {decoding['max_new_tokens']} new sub-words"]
    if decoding["no_repeat_ngram_size"]:
        parts.append(f"no repeated {decoding['no_repeat_ngram_size']}-gram")
    if decoding["repetition_penalty"] != 1:
        parts.append(f"repetition penalty {decoding['repetition_penalty']}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _parallel(data: Any) -> bool:
    """Parallel text files: the input and label "fields" are file suffixes (de, en)."""
    if data is None or not data.input_field or not data.label_field:
        return False
    path = Path(data.train or data.path or "")
    if path.is_file():
        return path.suffix == f".{data.input_field}"
    return path.is_dir() and any(path.glob(f"*.{data.input_field}"))


def _default_instruction(data: Any) -> str:
    if _parallel(data):
        return f"Translate this text from {data.input_field} to {data.label_field}."
    return SUMMARIZE


# --- encoding -------------------------------------------------------------------------------------
def encode_seq2seq(dataset: Any, tokenizer: Any, extra: dict[str, Any],
                   max_length: int) -> list[dict[str, Any]]:
    """Features of an encoder-decoder: the source (with the tokenizer's special tokens, cut at
    `max_length`) for the encoder; the first reference and EOS as `labels`, the decoder's start
    and the labels but the last as `decoder_input_ids` (the seq2seq loss). `prompt` is the
    source's length: generation feeds the whole source."""
    new, eos, start = int(extra["max_new_tokens"]), int(extra["eos_id"]), int(extra["decoder_start"])
    features, cut_src, cut_tgt = [], 0, 0
    for ex in dataset.items:
        src = tokenizer(ex.source, add_special_tokens=True)["input_ids"]
        if len(src) > max_length:
            cut_src += 1
            src = src[: max_length - 1] + src[-1:]  # keep the closing special token
        feature = {"input_ids": src, "attention_mask": [1] * len(src), "prompt": len(src),
                   "tokenizer": tokenizer}
        if ex.references:
            tgt = tokenizer(ex.references[0].strip(), add_special_tokens=True)["input_ids"]
            if tgt and tgt[0] == start:  # BERT's [CLS] opens every text: it is the start
                tgt = tgt[1:]
            if tgt and tgt[-1] == eos:
                tgt = tgt[:-1]
            if len(tgt) > new - 1:
                cut_tgt += 1
                tgt = tgt[: new - 1]
            labels = tgt + [eos]
            feature.update(labels=labels, decoder_input_ids=[start] + labels[:-1])
        else:
            feature.update(labels=[], decoder_input_ids=[start])
        features.append(feature)
    if cut_src:
        note(f"{dataset.path}: {cut_src} of {len(dataset.items)} sources are longer than "
             f"data.max_length={max_length} sub-words; they are cut there (raise data.max_length "
             "to keep more)")
    _note_cut_targets(dataset, cut_tgt, new)
    return features


def _note_cut_targets(dataset: Any, cut: int, new: int) -> None:
    if cut:
        note(f"{dataset.path}: {cut} references are longer than generate.max_new_tokens="
             f"{new}; their cost (the loss, the data code length) counts their first "
             f"{new - 1} sub-words, the scores compare with the whole reference")


def prompt_parts(tokenizer: Any, extra: dict[str, Any]) -> tuple[list[int], list[int]]:
    """The prompt's sub-words before and after the source text: the chat template's user turn
    (up to the assistant's start) where the run uses it, else the instruction, the source and
    `ANSWER`."""
    instruction = extra["instruction"]
    if extra.get("chat"):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{instruction}\n\n{_SOURCE}"}],
            tokenize=False, add_generation_prompt=True)
        before, after = text.split(_SOURCE)
        return (tokenizer(before, add_special_tokens=False)["input_ids"],
                tokenizer(after, add_special_tokens=False)["input_ids"])
    before = tokenizer(f"{instruction}\n\n", add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and before and before[-1] == tokenizer.eos_token_id:
        before = before[:-1]  # a tokenizer that ends every text with EOS: not mid-prompt
    return before, tokenizer(ANSWER, add_special_tokens=False)["input_ids"]


def encode_pairs(dataset: Any, tokenizer: Any, extra: dict[str, Any],
                 max_length: int) -> list[dict[str, Any]]:
    """Features of every pair: the prompt, then (when the example has a reference) its first
    reference and EOS; `labels` hold the next sub-word at each position of the target (-100
    elsewhere), so that the loss counts the target alone.

    The source is cut to leave room for the prompt and `max_new_tokens` of target (a note counts
    the cut sources); a reference longer than `max_new_tokens` is cut there.
    """
    before, after = prompt_parts(tokenizer, extra)
    new = int(extra["max_new_tokens"])
    budget = max_length - len(before) - len(after) - new
    if budget < 8:
        raise ConfigError(f"data.max_length={max_length} leaves {budget} sub-words for the source "
                          f"after the prompt ({len(before) + len(after)}) and "
                          f"generate.max_new_tokens={new}; raise data.max_length")
    eos = int(extra["eos_id"])
    lead = " " if not extra.get("chat") else ""
    features, cut_src, cut_tgt = [], 0, 0
    for ex in dataset.items:
        src = tokenizer(ex.source, add_special_tokens=False)["input_ids"]
        if len(src) > budget:
            cut_src += 1
            src = src[:budget]
        prompt = before + src + after
        ids, labels = list(prompt), [IGNORE] * len(prompt)
        if ex.references:
            tgt = tokenizer(lead + ex.references[0].strip(), add_special_tokens=False)["input_ids"]
            if len(tgt) > new - 1:
                cut_tgt += 1
                tgt = tgt[: new - 1]
            ids += tgt + [eos]
            labels = [IGNORE] * (len(prompt) - 1) + tgt + [eos, IGNORE]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels,
                         "prompt": len(prompt), "tokenizer": tokenizer})
    if cut_src:
        note(f"{dataset.path}: {cut_src} of {len(dataset.items)} sources are longer than the "
             f"{budget} sub-words the prompt leaves at data.max_length={max_length}; they are cut "
             "there (raise data.max_length to keep more)")
    _note_cut_targets(dataset, cut_tgt, new)
    return features
