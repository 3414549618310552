"""Product quantization of the word-embedding matrix (Jégou et al. 2011, "Product Quantization for
Nearest Neighbor Search"; for embedding tables, Shu and Nakayama 2018).

Each row of the word embeddings (the kept rows, after `vocab`) is cut into sub-vectors of `dim`
numbers; sub-space s has its own codebook of `size` centroids, found by k-means on the rows'
sub-vectors, and each sub-vector is stored as the one-byte index of its nearest centroid. With
dim 4 and 256 centroids a MiniLM row of 384 numbers becomes 96 bytes: 2 bits per number, plus the
codebooks (96 x 256 x 4 fp16 numbers, 200 KB, whatever the number of rows).

Why: the embedding rows are about half of MiniLM's weights and are looked up, never multiplied,
so a vector code costs nothing at run time (one gather). k-bit rounding of each number spends its
bits number by number; a codebook spends them on the sub-vectors that occur. At 2 bits per
number, codebooks stayed close to 3- and 4-bit rounding where 2-bit rounding fell far behind
(checked by hand on the fine-tuned MiniLM, not a benchmark).

The k-means weighs each row by how often its token occurs in the training corpus (plus one):
a sentence reads "the" and "," far more often than a rare word piece, so the centroids should fit
the frequent rows best, the error that matters being the one per token read, not per table row.
`weighting=uniform` (every row alike) is measured against it in docs/benchmarks/compression.md.

k-means is written here in torch (Lloyd's iterations, all sub-spaces batched, seeded from
`ctx.seed`): scikit-learn's KMeans would run it one sub-space at a time and add a dependency for
twenty lines.
"""

from __future__ import annotations

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
from occamtune.compress.grid import QuantCodes, quantize_tensor, set_to_codes
from occamtune.compress.record import StepRecord
from occamtune.compress.vocab import TrimmedEmbedding, embed_scale, trimmed_rank
from occamtune.errors import ConfigError, ModelError
from occamtune.models import TaskModel, family_of
from occamtune.models.families import get_path, set_path

WEIGHTINGS = ("count", "uniform")
CHUNK = 8  # sub-spaces clustered at once: distances of (CHUNK, rows, size) floats, ~250 MB at 30k rows


@dataclass(frozen=True)
class CodebookConfig(CompressionConfig):
    """Store the word-embedding rows as product-quantization codes.

    Attributes:
        dim: numbers per sub-vector (must divide the embedding width).
        size: centroids per sub-space codebook (at most 256: one byte per index).
        iters: k-means iterations.
        weighting: how much each row counts in the k-means: "count" (by how often its token
            occurs in the training corpus, plus one: the expected error over the tokens a model
            reads, not over the rows of a table) or "uniform" (every row alike).
        fallback_dim: after `vocab(rank=r)`, also code the rank-r codes of the rows it dropped
            (tokens unseen in training) with sub-vectors of this many numbers, r / fallback_dim
            bytes a row, with codebooks of their own (0: leave them to `quantize`).
        centroid_bits: store the centroids as k-bit codes with one fp16 scale per sub-space
            (None: fp16 numbers). The codebooks of 256 centroids are 2 bytes per number of the
            embedding width (196 KB for MiniLM), 4% of a 20x-smaller model; 8 bits halve that.
    """

    name = "codebook"
    search_order = 60
    level_rank = 1  # coded embeddings first
    search_dims = (
        SearchDim("codebook", (False, True),
                  doc="whether to store the word-embedding rows as product-quantization codes."),
        SearchDim("codebook_fallback_dim", 8, ok=lambda v: v >= 0, rule=">= 0",
                  doc="with a codebook, the rank-r codes of the rows a trimmed vocabulary "
                      "dropped are product-quantization codes too, r / this many bytes a row "
                      "(0, or a rank it does not divide: they are quantized with the weights)."),
        SearchDim("codebook_centroid_bits", 0, ok=lambda v: v == 0 or 2 <= v <= 8,
                  rule="0 or 2 to 8",
                  doc="with a codebook, its centroids as codes of this many bits, one scale a "
                      "sub-space (0: fp16 numbers)."),
    )

    @classmethod
    def refuses(cls, model: Any) -> str | None:
        try:
            family_of(model.encoder, "codebook")
        except ModelError as exc:
            return str(exc)
        return None

    dim: int = 4
    size: int = 256
    iters: int = 25
    weighting: str = "count"
    fallback_dim: int = 0
    centroid_bits: int | None = None

    def __post_init__(self) -> None:
        if self.centroid_bits is not None:
            check_range(self, "centroid_bits", 2, 8)
        check_range(self, "dim", 1, 1 << 16)
        check_range(self, "fallback_dim", 0, 1 << 16)
        check_range(self, "size", 2, 256)
        check_range(self, "iters", 1, 10_000)
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"codebook: weighting must be one of {', '.join(WEIGHTINGS)}, "
                              f"got {self.weighting!r}")

    @classmethod
    def from_point(cls, point: Point, space: Any) -> CodebookConfig | None:
        if not point.get("codebook", False):
            return None
        fallback, rank = space.codebook_fallback_dim, trimmed_rank(point, space)
        coded = fallback and rank and rank % fallback == 0  # else the rank-r codes get quantized
        return cls(fallback_dim=fallback if coded else 0,
                   centroid_bits=space.codebook_centroid_bits or None)

    @classmethod
    def level(cls, point: Point) -> float:
        return float(bool(point.get("codebook", False)))


class CodebookEmbedding(nn.Module):
    """An embedding whose row r is the concatenation over sub-spaces s of codebooks[s, codes[r, s]].

    Args:
        rows: number of rows.
        dim: sub-vector length.
        subspaces: sub-vectors per row (row width = subspaces * dim).
        size: centroids per codebook.
    """

    def __init__(self, rows: int, dim: int, subspaces: int, size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = float(scale)  # Gemma's embedding scale (1 elsewhere), not a weight
        self.register_buffer("codes", torch.zeros(rows, subspaces, dtype=torch.uint8))
        self.codebooks = nn.Parameter(torch.zeros(subspaces, size, dim))

    @property
    def num_embeddings(self) -> int:
        return self.codes.shape[0]

    @property
    def weight(self) -> torch.Tensor:
        """(rows, width) the decoded matrix (before the scale, as nn.Embedding's weight)."""
        return self.rows(torch.arange(self.num_embeddings))

    def rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        idx = self.codes[input_ids].long()  # (..., S)
        sub = torch.arange(self.codebooks.shape[0])
        return self.codebooks[sub, idx].flatten(-2)  # (..., S, dim) -> (..., S * dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.rows(input_ids)
        return out * self.scale if self.scale != 1.0 else out


def _holder(model: TaskModel) -> tuple[nn.Module, str]:
    """(module, attribute path) holding the word-embedding rows: inside a trimmed vocabulary
    when `vocab` ran before, else the encoder's word embeddings themselves."""
    family = family_of(model.encoder, "codebook")
    words = family.get_word_embeddings(model.encoder)
    if isinstance(words, TrimmedEmbedding):
        return words, "embedding"
    return model.encoder, family.word_embeddings


@structure_op("codebook")
def _rebuild_codebook(model: TaskModel, params: dict[str, Any]) -> None:
    holder, attr = _holder(model)
    if params.get("fallback"):  # the low-rank codes of a trimmed vocabulary's dropped rows
        attr = "fallback"
    set_path(holder, attr, CodebookEmbedding(params["rows"], params["dim"], params["subspaces"],
                                             params["size"], params.get("scale", 1.0)))


def kmeans(x: torch.Tensor, k: int, iters: int, start: torch.Tensor,
           weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means in each of S sub-spaces at once.

    Args:
        x: (S, N, d) points.
        start: (k,) distinct point indices, the first centroids.
        weights: (N,) positive weight of each point (None: all 1): a centroid is the weighted
            mean of its points, which minimises the weighted squared error.
    Returns:
        (centroids (S, k, d), assignment (S, N)); a centroid left without points keeps its place.
    """
    s, n, d = x.shape
    w = (torch.ones(n, dtype=x.dtype) if weights is None else weights.to(x.dtype)).expand(s, n)
    centroids = x[:, start].clone()  # (S, k, d)
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=-1)  # (S, N)
        sums = torch.zeros_like(centroids).scatter_add_(
            1, assign.unsqueeze(-1).expand(-1, -1, d), x * w.unsqueeze(-1))
        mass = torch.zeros(s, k, dtype=x.dtype).scatter_add_(1, assign, w)
        centroids = torch.where(mass.unsqueeze(-1) > 0, sums / mass.clamp(min=1e-12).unsqueeze(-1), centroids)
    return centroids, torch.cdist(x, centroids).argmin(dim=-1)


def _row_weights(holder: nn.Module, rows: int, ctx: CompressContext) -> torch.Tensor:
    """(rows,) 1 + the training-corpus count of each row's token (rows of a trimmed vocabulary
    are found through its id -> row map)."""
    if ctx.token_counts is None:
        raise ConfigError('codebook: weighting="count" needs token counts of the training corpus: '
                          'give a CompressContext with `token_counts`, or weighting="uniform"')
    counts = ctx.token_counts()
    ids = torch.tensor(list(counts), dtype=torch.long)
    n = torch.tensor(list(counts.values()), dtype=torch.float64)
    if isinstance(holder, TrimmedEmbedding):
        keep = (ids >= 0) & (ids < holder.remap.numel())
        ids, n = holder.remap[ids[keep]].long(), n[keep]
    keep = (ids >= 0) & (ids < rows)  # a dropped token (row >= rows) has no row of its own here
    weights = torch.ones(rows, dtype=torch.float64)
    weights.index_add_(0, ids[keep], n[keep])
    return weights.float()


@register(CodebookConfig)
def _codebook(model: TaskModel, config: CodebookConfig,
              ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    holder, attr = _holder(model)
    old = get_path(holder, attr)
    if not isinstance(old, nn.Embedding):
        raise ConfigError("codebook: the word embeddings are already coded; apply `codebook` once")
    rows, width = old.weight.shape
    if width % config.dim:
        raise ConfigError(f"codebook: dim must divide the embedding width {width}, got {config.dim}")
    weights = _row_weights(holder, rows, ctx) if config.weighting == "count" else None
    step = StepRecord()
    params, error = _code_rows(model, holder, attr, config.dim, config, ctx.seed, weights, step)
    info = step.facts
    info.update({k: params[k] for k in ("rows", "subspaces", "size")}, relative_error=error)
    fallback = getattr(holder, "fallback", None)
    if config.fallback_dim and isinstance(fallback, nn.Embedding):
        rank = fallback.weight.shape[1]
        if rank % config.fallback_dim:
            raise ConfigError(f"codebook: fallback_dim must divide the vocabulary's rank {rank}, "
                              f"got {config.fallback_dim}")
        # unseen in training, these rows have no counts to weigh them by
        params, info["fallback_error"] = _code_rows(model, holder, "fallback", config.fallback_dim,
                                                    config, ctx.seed, None, step)
        info["fallback_rows"] = params["rows"]
    return model, step


def _code_rows(model: TaskModel, holder: nn.Module, attr: str, dim: int, config: CodebookConfig,
               seed: int, weights: torch.Tensor | None,
               step: StepRecord) -> tuple[dict[str, Any], float]:
    """Replace the nn.Embedding `holder.<attr>` by its product-quantization codes (sub-vectors of
    `dim` numbers), noting the change (and the centroids' codes) in `step`; returns the
    structure record's params and the coded rows' relative squared error."""
    old = get_path(holder, attr)
    rows, width = old.weight.shape
    subspaces, size = width // dim, min(config.size, rows)
    x = old.weight.detach().float().reshape(rows, subspaces, dim).transpose(0, 1)  # (S, N, d)
    gen = torch.Generator().manual_seed(seed)
    start = (torch.randperm(rows, generator=gen)[:size] if weights is None  # distinct seeds
             else torch.multinomial(weights, size, replacement=False, generator=gen))
    parts = [kmeans(x[i:i + CHUNK], size, config.iters, start, weights)
             for i in range(0, subspaces, CHUNK)]
    centroids, assign = torch.cat([c for c, _ in parts]), torch.cat([a for _, a in parts])
    params = {"rows": rows, "dim": dim, "subspaces": subspaces, "size": size,
              **({"fallback": True} if attr == "fallback" else {})}
    if embed_scale(old) != 1.0:  # Gemma's scaled rows, when not inside a trimmed vocabulary
        params["scale"] = embed_scale(old)
    _rebuild_codebook(model, params)
    new = get_path(holder, attr)
    with torch.no_grad():
        new.codebooks.copy_(centroids)
        new.codes.copy_(assign.T.to(torch.uint8))
    if config.centroid_bits is not None:
        flat = centroids.reshape(subspaces, size * dim)
        quant = QuantCodes(*quantize_tensor(flat, config.centroid_bits, 0), config.centroid_bits,
                           size * dim)
        set_to_codes(new.codebooks, quant)
        name = next(n for n, m in model.named_modules() if m is new)
        step.codes[f"{name}.codebooks"] = quant
    step.changed("codebook", **params)
    with torch.no_grad():  # a number for the card, not a loss
        error = (new.weight - old.weight).pow(2).sum() / old.weight.pow(2).sum()
    return params, round(float(error), 5)
