"""Vocabulary trimming: keep only the embedding rows of tokens the task's corpus uses.

A multilingual or general-domain vocabulary is mostly rows a given task never looks up; as in
Abdaoui et al. 2020 ("Load What You Need: Smaller Versions of Multilingual BERT") the word
embedding matrix is cut down to the tokens seen in the training corpus (plus the special tokens
and, as a floor, the `keep_top` lowest ids). Input ids stay in the tokenizer's id space: the new
`TrimmedEmbedding` maps old id -> new row through an int32 buffer.

What an unseen id (a test word piece the training corpus never used) becomes:
    rank = 0: [UNK]'s row. Where a few percent of test sub-words are unseen in training (as in
        CoNLL-2003), that costs several F1 points (docs/benchmarks/compression.md).
    rank = r > 0: its row projected onto the r leading principal directions of the embedding
        matrix (mean + code @ basis, r numbers per dropped row): a cheap, still informative
        vector, at a fraction of a full row's bytes (docs/benchmarks/compression.md compares
        r = 32 and 64 with [UNK]).

With `positions=true` the position embeddings are cut the same way: a run reads at most
`data.max_length` positions (longer texts are windowed), so the rows past it are never looked
up (MiniLM: 512 rows, 128 used at the default max_length). The saved config's
`max_position_embeddings` says so, and a longer max_length is refused at load.
"""

from __future__ import annotations

import base64
import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    Point,
    SearchDim,
    check_range,
    register,
    structure_op,
)
from occamtune.compress.packing import pack_mask, unpack_mask
from occamtune.compress.record import StepRecord
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, family_of, max_positions
from occamtune.models.families import get_path, is_whole_seq2seq, set_path

log = logging.getLogger(__name__)
BERT_SPECIAL = (0, 100, 101, 102, 103)  # [PAD], [UNK], [CLS], [SEP], [MASK] in BERT's vocab.txt
BERT_UNK = 100


@dataclass(frozen=True)
class VocabTrimConfig(CompressionConfig):
    """Keep the embedding rows of tokens seen in the training corpus.

    Attributes:
        min_count: keep tokens seen at least this many times.
        keep_top: also keep ids [0, keep_top) (the low ids of a WordPiece vocabulary).
        rank: dropped rows are kept as rank-`rank` codes on the matrix's principal directions
            (at most half the embedding size); 0 maps them to [UNK] instead.
        positions: also keep only the position embeddings the run uses (its max_length).
    """

    name = "vocab"
    search_order = 50
    level_rank = 2  # a trimmed vocabulary at a lower rank first
    search_dims = (
        SearchDim("vocab_trim", (False, True),
                  doc="whether to trim the vocabulary to the training corpus."),
        SearchDim("vocab_rank", (32, 128), ok=lambda v: v >= 0,
                  when=lambda p: bool(p.get("vocab_trim")),
                  doc="ranks at which a trimmed vocabulary keeps the rows it drops (0: [UNK])."),
        SearchDim("vocab_min_count", 1, ok=lambda v: v >= 1, rule=">= 1",
                  doc="a trimmed vocabulary keeps the full rows of tokens seen this often."),
        SearchDim("vocab_positions", True,
                  doc="a trimmed vocabulary also keeps only the position embeddings the run "
                      "reads (its max_length): fewer bytes, the same outputs."),
    )

    min_count: int = 1
    keep_top: int = 0
    rank: int = 64
    positions: bool = False

    def __post_init__(self) -> None:
        check_range(self, "min_count", 1, 1 << 40)
        check_range(self, "keep_top", 0, 1 << 40)
        check_range(self, "rank", 0, 1 << 20)

    @classmethod
    def from_point(cls, point: Point, space: Any) -> VocabTrimConfig | None:
        if not point.get("vocab_trim", False):
            return None
        return cls(min_count=space.vocab_min_count, rank=trimmed_rank(point, space),
                   positions=space.vocab_positions)

    @classmethod
    def level(cls, point: Point) -> float:
        return 1 / (1 + point.get("vocab_rank", 0)) if point.get("vocab_trim") else -1.0


def trimmed_rank(point: Point, space: Any) -> int:
    """The rank of the dropped rows at a point of the search space (0: not trimmed)."""
    return int(point.get("vocab_rank", space.vocab_rank[0])) if point.get("vocab_trim") else 0


class TrimmedEmbedding(nn.Module):
    """An embedding over a subset of a vocabulary, looked up with the original ids.

    `remap[id]` is the row of a kept id in `embedding`, or `rows + j` for the j-th dropped id
    kept at low rank: `basis(fallback[j])` (the Linear's bias is the mean row).

    Args:
        vocab_size: size of the original id space.
        rows: number of kept rows.
        dim: embedding size.
        fallback_rows: number of dropped rows kept at low rank (0: none).
        rank: their rank.
        kept: (vocab_size,) bool, the ids with a row of their own: `remap` follows from it
            (`remap_of`) and is not saved (artifacts before it saved `remap`, an int32 per id,
            where the mask takes a bit).
        unk_row: the row of [UNK], which a dropped id reads when there are no low-rank rows.
        scale: the factor the looked-up rows are multiplied by (Gemma scales its embeddings
            by sqrt(hidden size); 1 elsewhere); recorded in the structure, not a weight.
    """

    def __init__(self, vocab_size: int, rows: int, dim: int, fallback_rows: int = 0,
                 rank: int = 0, kept: torch.Tensor | None = None, unk_row: int = 0,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)
        # old id -> new row; saved with the weights only when not rebuilt from the `kept` mask
        self.register_buffer("remap", torch.zeros(vocab_size, dtype=torch.int32),
                             persistent=kept is None)
        self.embedding = nn.Embedding(rows, dim)
        self.fallback = nn.Embedding(fallback_rows, rank) if fallback_rows and rank else None
        self.basis = nn.Linear(rank, dim) if self.fallback is not None else None
        if kept is not None:
            self.remap.copy_(remap_of(kept, unk_row, self.fallback is not None))
        # the id of each kept row (an output layer tied to these rows scores those ids alone)
        self.register_buffer("kept_ids", torch.zeros(0, dtype=torch.long) if kept is None
                             else torch.nonzero(kept).flatten(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    @property
    def num_embeddings(self) -> int:
        return self.remap.numel()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        idx = self.remap[input_ids].long()  # (B, T)
        if self.fallback is None:
            out = self.embedding(idx)  # (B, T, D)
        else:
            rows = self.embedding.num_embeddings
            kept = self.embedding(idx.clamp(max=rows - 1))  # (B, T, D)
            low = self.basis(self.fallback((idx - rows).clamp(min=0)))  # (B, T, r) -> (B, T, D)
            out = torch.where((idx >= rows).unsqueeze(-1), low, kept)
        return out * self.scale if self.scale != 1.0 else out


def remap_of(kept: torch.Tensor, unk_row: int, fallback: bool) -> torch.Tensor:
    """(V,) int32 old id -> row: kept ids in order to rows 0..k-1; the others in order to the
    low-rank rows k.. after them (`fallback`), else all to `unk_row`."""
    remap = torch.full(kept.shape, unk_row, dtype=torch.int32)
    rows = int(kept.sum())
    remap[kept] = torch.arange(rows, dtype=torch.int32)
    if fallback:
        remap[~kept] = rows + torch.arange(kept.numel() - rows, dtype=torch.int32)
    return remap


def _mask_text(mask: torch.Tensor) -> str:
    """A bool mask as the base64 of its bits (a structure record is JSON)."""
    return base64.b64encode(pack_mask(mask.numpy())).decode()


def _mask_of(text: str, n: int) -> torch.Tensor:
    return torch.from_numpy(unpack_mask(base64.b64decode(text), n))


class TrimmedOutput(nn.Module):
    """An output layer over a trimmed vocabulary's rows: the kept ids' logits, a floor for the
    others (`spread_logits`), so that the model can write only the kept ids. Tied to a
    `TrimmedEmbedding` where the layer it replaces was tied to the word embeddings.

    Args:
        kept: (vocab_size,) bool, the ids with a row.
        dim: the hidden size.
        bias: whether the output layer has a bias (BERT's LM head does).
    """

    def __init__(self, kept: torch.Tensor, dim: int, bias: bool) -> None:
        super().__init__()
        self.vocab_size = int(kept.numel())
        self.out = nn.Linear(dim, int(kept.sum()), bias=bias)
        self.register_buffer("kept_ids", torch.nonzero(kept).flatten(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.out.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        from occamtune.tasks.generate import spread_logits

        return spread_logits(self.out(hidden), self.kept_ids, self.vocab_size)


def _trimmed_like(old: nn.Module, params: dict[str, Any], kept: torch.Tensor | None) -> TrimmedEmbedding:
    return TrimmedEmbedding(
        old.num_embeddings, params["rows"], old.weight.shape[1], params.get("fallback_rows", 0),
        params.get("rank", 0), kept, params.get("unk_row", 0), params.get("scale", 1.0))


@structure_op("vocab")
def _rebuild_vocab(model: TaskModel, params: dict[str, Any]) -> None:
    if params.get("seq2seq"):
        _swap_seq2seq_vocab(model.encoder, params)
        return
    family = family_of(model.encoder, "vocab")
    old = family.get_word_embeddings(model.encoder)
    kept = _mask_of(params["kept"], old.num_embeddings) if "kept" in params else None
    family.set_word_embeddings(model.encoder, _trimmed_like(old, params, kept))


def _swap_seq2seq_vocab(whole: nn.Module, params: dict[str, Any]) -> dict[int, tuple[nn.Module, nn.Module]]:
    """Put a trimmed embedding in the place of each word embedding of a whole encoder-decoder
    (one for each distinct matrix: T5's and BART's halves share theirs, a warm-started model's
    halves have one each) and a `TrimmedOutput` in the place of its output layer, tied as the
    old one was. Returns {id(old matrix): (old module, new module)}, the output layer's under
    id(its old module).

    Why by module identity: where the matrix sits differs by family (T5's `shared` and each
    stack's `embed_tokens`; BART's scaled embeddings; BERT's `embeddings.word_embeddings`),
    and every module holding it must take the new one."""
    halves = (whole.get_encoder(), whole.get_decoder())
    matrices = {id(h.get_input_embeddings().weight) for h in halves}
    swapped: dict[int, tuple[nn.Module, nn.Module]] = {}
    out = whole.get_output_embeddings()
    holders = [(name, m) for name, m in whole.named_modules()
               if isinstance(m, nn.Embedding) and id(m.weight) in matrices]
    for name, old in holders:
        if id(old.weight) not in swapped:
            kept = _mask_of(params["kept"], old.num_embeddings)
            swapped[id(old.weight)] = (old, _trimmed_like(old, params, kept))
        set_path(whole, name, swapped[id(old.weight)][1])
    name = next(n for n, m in whole.named_modules() if m is out)
    new = TrimmedOutput(_mask_of(params["kept"], out.weight.shape[0]), out.weight.shape[1],
                        out.bias is not None)
    if id(out.weight) in swapped:  # tied: the kept rows of the embedding are its rows
        new.out.weight = swapped[id(out.weight)][1].embedding.weight
    swapped[id(out)] = (out, new)
    set_path(whole, name, new)
    return swapped


def embed_scale(module: nn.Module) -> float:
    """The factor a scaled word embedding multiplies its rows by (Gemma's; BART's with
    `scale_embedding`), else 1."""
    for name in ("scalar_embed_scale", "embed_scale", "scale"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 1.0


def principal_codes(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes (V, r), basis (r, D), mean (D,)) with weight ~ mean + codes @ basis (truncated SVD
    of the centred matrix)."""
    w = weight.detach().float()
    mean = w.mean(dim=0)
    _, _, vh = torch.linalg.svd(w - mean, full_matrices=False)
    basis = vh[:rank]  # (r, D)
    return (w - mean) @ basis.T, basis, mean


def special_ids(ctx: CompressContext, vocab_size: int) -> tuple[list[int], int]:
    """(special token ids, [UNK] id) from ctx.tokenizer, else BERT's vocab.txt conventions."""
    tok = ctx.tokenizer
    if tok is not None and getattr(tok, "unk_token_id", None) is not None:
        return list(tok.all_special_ids), int(tok.unk_token_id)
    log.warning("vocab: no tokenizer in the CompressContext; assuming BERT's special ids %s",
                BERT_SPECIAL)
    ids = [i for i in BERT_SPECIAL if i < vocab_size]
    return ids, BERT_UNK if BERT_UNK < vocab_size else 0


def kept_ids(config: VocabTrimConfig, counts: dict[int, int], special: list[int],
             vocab_size: int) -> list[int]:
    """Sorted ids whose rows are kept."""
    seen = {int(i) for i, c in counts.items() if c >= config.min_count and 0 <= int(i) < vocab_size}
    return sorted(seen | set(special) | set(range(min(config.keep_top, vocab_size))))


@register(VocabTrimConfig)
def _vocab(model: TaskModel, config: VocabTrimConfig,
           ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    if ctx.token_counts is None:
        raise ConfigError("vocab: needs token counts of the training corpus: give a "
                          "CompressContext with `token_counts`")
    seq2seq = is_whole_seq2seq(model.encoder)
    if seq2seq:  # the source's and the target's sub-words, the output layer's rows with them
        old = model.encoder.get_input_embeddings()
    else:
        family = family_of(model.encoder, "vocab")
        if family.tied_output(model.encoder):  # AutoModel's base models carry no output head
            raise ConfigError("vocab: the model's output head is tied to its word embeddings; "
                              "trimming the rows would cut the head's classes too")
        old = family.get_word_embeddings(model.encoder)
    if isinstance(old, TrimmedEmbedding):
        raise ConfigError("vocab: the vocabulary is already trimmed")
    if not isinstance(old, nn.Embedding):
        raise ConfigError("vocab: the word embeddings are already coded; put `vocab` before "
                          "`codebook`")
    vocab_size = old.num_embeddings
    special, unk = special_ids(ctx, vocab_size)
    keep = kept_ids(config, ctx.token_counts(), special, vocab_size)
    dim = old.weight.shape[1]
    rank = config.rank
    if rank > dim // 2:  # codes of more than half the width barely save anything
        log.warning("vocab: rank %d is too large for embeddings of size %d; using %d", rank, dim,
                    dim // 2)
        rank = dim // 2
    dropped = sorted(set(range(vocab_size)) - set(keep)) if rank else []
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[keep] = True
    params = {"rows": len(keep), "fallback_rows": len(dropped), "rank": rank if dropped else 0,
              "unk_row": keep.index(unk), "kept": _mask_text(mask)}
    if embed_scale(old) != 1.0:
        params["scale"] = embed_scale(old)
    if seq2seq:
        params["seq2seq"] = True
        pairs = list(_swap_seq2seq_vocab(model.encoder, params).values())
    else:
        _rebuild_vocab(model, params)
        pairs = [(old, family.get_word_embeddings(model.encoder))]
    index = torch.tensor(keep)
    for was, new in pairs:
        with torch.no_grad():
            if isinstance(new, TrimmedOutput):  # the output layer's kept rows (tied: the same)
                new.out.weight.copy_(was.weight.detach()[index])
                if was.bias is not None:
                    new.out.bias.copy_(was.bias.detach()[index])
                continue
            new.embedding.weight.copy_(was.weight.detach()[index])
            if new.fallback is not None:
                codes, basis, mean = principal_codes(was.weight, rank)
                new.fallback.weight.copy_(codes[torch.tensor(dropped)])
                new.basis.weight.copy_(basis.T)
                new.basis.bias.copy_(mean)
    step = StepRecord(facts={"rows_kept": len(keep), "rows_before": vocab_size,
                             "low_rank_rows": len(dropped), "rank": params["rank"]})
    step.changed("vocab", **params)
    if config.positions and seq2seq:
        log.warning("vocab: positions=true: an encoder-decoder's position tables are not cut")
        step.facts["positions_kept"] = 0
    elif config.positions:
        step.facts["positions_kept"] = trim_positions(model, ctx.max_length)
    return model, step


def trim_positions(model: TaskModel, max_length: int | None) -> int:
    """Keep the first `max_length` absolute position embeddings; returns how many are kept (0
    when the encoder has no absolute position table: nothing to cut, a warning).

    Written here: Hugging Face has `resize_token_embeddings` for the vocabulary but nothing for
    positions. The encoder's config is updated too, so the saved model rebuilds at this size.
    """
    if max_length is None:
        raise ConfigError("vocab: positions=true needs the run's max_length (a CompressContext "
                          "with `max_length`)")
    limit = max_positions(model)
    if limit is None:
        log.warning("vocab: positions=true: %s has no absolute position embeddings to cut",
                    type(model.encoder).__name__)
        return 0
    family = family_of(model.encoder, "vocab")
    old = family.get_position_embeddings(model.encoder)
    if max_length >= limit:
        return old.num_embeddings
    offset = old.num_embeddings - limit  # RoBERTa's and BART's tables start 2 rows in
    rows = offset + max_length
    new = copy.deepcopy(old)  # the table's own class: BART's adds its offset to the positions
    new.weight = nn.Parameter(old.weight.detach()[:rows].clone())
    new.num_embeddings = rows
    family.set_position_embeddings(model.encoder, new)
    emb = get_path(model.encoder, family.position_embeddings.rpartition(".")[0])
    for name in ("position_ids", "token_type_ids"):  # (1, max_positions) buffers of BERT-likes
        buf = getattr(emb, name, None)
        if isinstance(buf, torch.Tensor) and buf.dim() == 2 and buf.shape[1] > rows:
            setattr(emb, name, buf[:, :rows].clone())
    # the size the config builds the table from: RoBERTa's counts the offset, BART's does not
    model.encoder.config.max_position_embeddings = rows - int(getattr(new, "offset", 0))
    return rows
