"""The search space: which compression pipelines the search may try.

A pipeline is built in a fixed order, each step optional:
distill -> structured prune -> unstructured prune -> low-rank -> vocabulary trim -> embedding
codebook -> quantize.
Unstructured pruning and low-rank factorisation are alternatives (a truncated SVD of a sparse
matrix gives dense factors, losing the sparsity), so low-rank is only tried when sparsity is 0.
Every field is a tuple of allowed values; restrict a field to one value to fix that step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from occamtune.config import yaml_number
from occamtune.errors import ConfigError

RETRY_ATTR = "retry_of"  # user attribute of a trial the search queued to retry another with QAT


@dataclass(frozen=True)
class SearchSpace:
    """Allowed settings of each pipeline step (0 / 0.0 / False means: skip the step).

    Attributes:
        distill_layers: student depths; 0 keeps the teacher's layers (no distillation).
            Depths not below the teacher's are dropped when the space meets a model.
        distill_epochs: epochs of distillation; None uses the run's own epochs.
        heads: fractions of attention heads removed by structured pruning.
        ffn: fractions of feed-forward neurons removed by structured pruning.
        prune_epochs: epochs of recovery fine-tuning after structured pruning; None uses the
            run's own epochs, 0 none (the layers are refit on calibration data).
        sparsity: unstructured magnitude-pruning sparsities.
        lowrank_energy: singular-value energy kept by low-rank factorisation (only without
            unstructured sparsity).
        vocab_trim: whether to trim the vocabulary to the training corpus.
        vocab_rank: ranks at which a trimmed vocabulary keeps the rows it drops (0: [UNK]).
        vocab_min_count: a trimmed vocabulary keeps the full rows of tokens seen this often.
        vocab_positions: a trimmed vocabulary also keeps only the position embeddings the run
            reads (its max_length): fewer bytes, the same outputs.
        codebook: whether to store the word-embedding rows as product-quantization codes.
        codebook_fallback_dim: with a codebook, the rank-r codes of the rows a trimmed
            vocabulary dropped are product-quantization codes too, r / this many bytes a row (0:
            they are quantized with the weights, r / 2 bytes a row at 4 bits). For the same
            bytes a row, a higher rank in product-quantization codes loses less than a lower
            rank quantized with the weights (docs/benchmarks/search.md, the candidates).
        bits: weight bits for quantization; 32 means no quantization.
        group_size: quantization group size.
        quant_epochs: quantization-aware training epochs before rounding (0: none). Every
            candidate gets the first value; the later ones are retries: QAT keeps a pipeline's
            bytes and costs epochs of training, so the search spends it only on a candidate that
            missed the tolerance narrowly and would be the smallest yet (see `schedule.py`).
        quant_lr: learning rate of quantization-aware training (None: a tenth of the run's).
        rounding: how quantization rounds the Linear weights: "gptq" (on the run's calibration
            batches, a minute per candidate on two cores: lower error for the same bytes;
            docs/benchmarks/compression.md) or "nearest".
        qat_rounding: how a candidate with quantization-aware training rounds after it:
            "nearest", the rounding it trained with, by default: it lost less than GPTQ after
            QAT (docs/benchmarks/search.md, the candidates).
    """

    distill_layers: tuple[int, ...] = (0, 4, 3, 2)
    distill_epochs: float | None = None
    heads: tuple[float, ...] = (0.0,)
    ffn: tuple[float, ...] = (0.0, 0.25, 0.5)
    prune_epochs: float | None = None
    sparsity: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9)
    lowrank_energy: tuple[float, ...] = (0.0, 0.9, 0.95)
    vocab_trim: tuple[bool, ...] = (False, True)
    vocab_rank: tuple[int, ...] = (32, 128)
    vocab_min_count: int = 1
    vocab_positions: bool = True
    codebook: tuple[bool, ...] = (False, True)
    codebook_fallback_dim: int = 8
    bits: tuple[int, ...] = (8, 6, 4, 3)
    group_size: int = 64
    quant_epochs: tuple[float, ...] = (0.0,)
    quant_lr: float | None = None
    rounding: str = "gptq"
    qat_rounding: str = "nearest"

    def __post_init__(self) -> None:
        if isinstance(self.quant_epochs, (int, float)):  # one value, as before it was searched
            object.__setattr__(self, "quant_epochs", (float(self.quant_epochs),))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from YAML / JSON
                object.__setattr__(self, f.name, value := tuple(value))
            if isinstance(value, tuple) and not value:
                raise ConfigError(f"search space field {f.name!r} needs at least one value")
        _check("distill_layers", self.distill_layers, lambda v: v >= 0)
        _check("heads", self.heads, lambda v: 0.0 <= v < 1.0)
        _check("ffn", self.ffn, lambda v: 0.0 <= v < 1.0)
        _check("sparsity", self.sparsity, lambda v: 0.0 <= v < 1.0)
        _check("lowrank_energy", self.lowrank_energy, lambda v: 0.0 <= v <= 1.0)
        _check("bits", self.bits, lambda v: 2 <= v <= 8 or v == 32)
        if self.group_size < 1:
            raise ConfigError(f"search space group_size must be >= 1, got {self.group_size}")
        _check("vocab_rank", self.vocab_rank, lambda v: v >= 0)
        from occamtune.compress.quantize import ROUNDINGS

        for name in ("rounding", "qat_rounding"):
            if getattr(self, name) not in ROUNDINGS:
                raise ConfigError(f"search space {name} must be one of {', '.join(ROUNDINGS)}, "
                                  f"got {getattr(self, name)!r}")
        _check("quant_epochs", self.quant_epochs, lambda v: v >= 0)
        if self.codebook_fallback_dim < 0:
            raise ConfigError(f"search space codebook_fallback_dim must be >= 0, got "
                              f"{self.codebook_fallback_dim}")
        if self.vocab_min_count < 1:
            raise ConfigError(f"search space vocab_min_count must be >= 1, got {self.vocab_min_count}")
        if self.prune_epochs is not None and self.prune_epochs < 0:
            raise ConfigError(f"search space prune_epochs must be >= 0 (or unset), got {self.prune_epochs}")
        if self.quant_lr is not None and self.quant_lr <= 0:
            raise ConfigError(f"search space quant_lr must be > 0 (or unset), got {self.quant_lr}")

    def for_teacher(self, num_layers: int) -> SearchSpace:
        """This space with student depths the teacher can give (fewer layers than it has)."""
        depths = tuple(d for d in self.distill_layers if d == 0 or d < num_layers) or (0,)
        return SearchSpace(**{**asdict(self), "distill_layers": depths})

    def size(self) -> int:
        """Number of distinct pipelines the sampler proposes (QAT retries not counted)."""
        dense = len(self.lowrank_energy) if 0.0 in self.sparsity else 0
        tail = dense + len([s for s in self.sparsity if s > 0])
        vocab = (False in self.vocab_trim) + (True in self.vocab_trim) * len(self.vocab_rank)
        return (len(self.distill_layers) * len(self.heads) * len(self.ffn) * tail * vocab
                * len(self.codebook) * len(self.bits))


def _check(name: str, values: tuple, ok: Any) -> None:
    bad = [v for v in values if not ok(v)]
    if bad:
        raise ConfigError(f"search space field {name!r} has values out of range: {bad}")


def suggest_params(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Ask an Optuna trial for one point of the space (parameter name -> value)."""
    params = {
        "distill_layers": trial.suggest_categorical("distill_layers", space.distill_layers),
        "heads": trial.suggest_categorical("heads", space.heads),
        "ffn": trial.suggest_categorical("ffn", space.ffn),
        "sparsity": trial.suggest_categorical("sparsity", space.sparsity),
    }
    params["lowrank_energy"] = (trial.suggest_categorical("lowrank_energy", space.lowrank_energy)
                                if params["sparsity"] == 0.0 else 0.0)
    params["vocab_trim"] = trial.suggest_categorical("vocab_trim", space.vocab_trim)
    if params["vocab_trim"]:
        params["vocab_rank"] = trial.suggest_categorical("vocab_rank", space.vocab_rank)
    params["codebook"] = trial.suggest_categorical("codebook", space.codebook)
    params["bits"] = trial.suggest_categorical("bits", space.bits)
    if params["bits"] != 32 and len(space.quant_epochs) > 1:
        # QAT keeps a pipeline's bytes and costs epochs of training, so it is not sampled: the
        # search asks for it (a trial enqueued with RETRY_ATTR) when a candidate misses narrowly
        retry = RETRY_ATTR in (getattr(trial, "user_attrs", None) or {})
        params["quant_epochs"] = (trial.suggest_categorical("quant_epochs", space.quant_epochs)
                                  if retry else space.quant_epochs[0])
    return params


def build_pipeline(params: dict[str, Any], space: SearchSpace) -> list[Any]:
    """The list of compression configs for a point of the space, in the fixed order."""
    from occamtune.compress import (
        CodebookConfig,
        DistillConfig,
        LowRankConfig,
        PruneConfig,
        QuantizeConfig,
        StructuredPruneConfig,
        VocabTrimConfig,
    )

    steps: list[Any] = []
    if params.get("distill_layers", 0):
        extra = {"epochs": space.distill_epochs} if space.distill_epochs is not None else {}
        steps.append(DistillConfig(layers=int(params["distill_layers"]), **extra))
    if params.get("heads", 0.0) or params.get("ffn", 0.0):
        steps.append(StructuredPruneConfig(heads=float(params.get("heads", 0.0)),
                                             ffn=float(params.get("ffn", 0.0)),
                                             epochs=space.prune_epochs))
    if params.get("sparsity", 0.0):
        steps.append(PruneConfig(sparsity=float(params["sparsity"])))
    if params.get("lowrank_energy", 0.0):
        steps.append(LowRankConfig(energy=float(params["lowrank_energy"])))
    rank = int(params.get("vocab_rank", space.vocab_rank[0])) if params.get("vocab_trim") else 0
    if params.get("vocab_trim", False):
        steps.append(VocabTrimConfig(min_count=space.vocab_min_count, rank=rank,
                                     positions=space.vocab_positions))
    if params.get("codebook", False):
        fallback = space.codebook_fallback_dim
        coded = fallback and rank and rank % fallback == 0  # else the rank-r codes get quantized
        steps.append(CodebookConfig(fallback_dim=fallback) if coded else CodebookConfig())
    if params.get("bits", 32) != 32:
        epochs = float(params.get("quant_epochs", space.quant_epochs[0]))
        steps.append(QuantizeConfig(bits=int(params["bits"]), group_size=space.group_size,
                                    epochs=epochs, lr=space.quant_lr if epochs else None,
                                    rounding=space.qat_rounding if epochs else space.rounding))
    return steps


def suggest(trial: Any, space: SearchSpace) -> list[Any]:
    """One pipeline for an Optuna trial: `build_pipeline(suggest_params(trial, space), space)`."""
    return build_pipeline(suggest_params(trial, space), space)


def parse_space(overrides: list[str] | None) -> SearchSpace:
    """A space from `field=v1,v2,...` strings, e.g. ["bits=4,3", "distill_layers=0"]."""
    import yaml

    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(SearchSpace)}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or key.strip() not in names:
            raise ConfigError(f"search space override {item!r} must be FIELD=v1,v2 with FIELD one "
                              f"of {', '.join(sorted(names))}")
        key = key.strip()
        values = [yaml_number(yaml.safe_load(v)) for v in raw.split(",")]
        scalar = ("group_size", "distill_epochs", "prune_epochs", "vocab_min_count",
                  "vocab_positions", "codebook_fallback_dim", "quant_lr", "rounding",
                  "qat_rounding")
        kwargs[key] = values[0] if key in scalar else tuple(values)
    return SearchSpace(**kwargs)
