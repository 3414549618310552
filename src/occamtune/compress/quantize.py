"""Weight-only k-bit symmetric quantization with per-group scales.

Round-to-nearest quantization of each weight row in groups along the input dimension, as in
Dettmers et al. 2022 (LLM.int8()) and Frantar et al. 2023 (GPTQ) without the error correction:
for a group g, `scale_g = max|w_g| / (2^(k-1) - 1)` and `code = round(w / scale_g)`.

In memory the model keeps the dequantized fp32 weights `code * scale`, so its forward is exactly
what the artifact stores; the integer codes and scales go into the step's record (`StepRecord
.codes`, by tensor name) for the artifact writer, which bit-packs them to k bits.

`epochs > 0` is quantization-aware training (Jacob et al. 2018; Bengio et al. 2013's straight-
through estimator): the model first trains on the run's data with every target weight replaced
in the forward pass by its quantized value while gradients update the float weights as if the
rounding were the identity; then the trained weights are quantized as above. The model learns
to live with its own rounding, which post-training rounding at 3 bits or fewer does not allow.
The training also moves what an earlier step stored as codes (a codebook's `centroid_bits`
centroids): those are rounded again to their own widths afterwards (`reround_trained`).
The model before quantization is the teacher (soft labels, as in TernaryBERT, Zhang et al. 2020,
and, when it has the same layers, `hidden_weight` x the MSE of each layer's output against the
teacher's) and the learning rate a tenth of the run's by default: the model is already trained,
and one epoch at the full rate moves it away from its optimum (seen on CoNLL-2003: 4-bit, one
epoch at the run's rate and no teacher lost dev F1).

`rounding="gptq"` rounds the Linear weights with GPTQ (see `gptq.py`) on the run's calibration
batches instead of to the nearest code: same codes and scales format, lower output error. After
quantization-aware training it rounds the trained weights.

`dynamic=True` marks the model for `to_int8_runtime` at inference: PyTorch's dynamic int8
quantization of the Linear layers (int8 weights per channel, activations quantized per batch)
runs faster on CPU, but re-rounds the k-bit weights to an int8 grid and quantizes the
activations, so its outputs drift from the stored model's. By default (`dynamic=None`) only
8-bit models use it: below 8 bits a user quantizes for size, and the drift adds to the rounding
loss (the "int8 kernels" entries of docs/benchmarks/compression.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from occamtune.compress import distill  # by module: tests replace train_with_teacher
from occamtune.compress.base import (
    CompressContext,
    CompressionConfig,
    Point,
    SearchDim,
    check_epochs,
    check_range,
    need_finetune,
    register,
)
from occamtune.compress.gptq import LayerInputs, blocks, gptq_round
from occamtune.compress.grid import (
    QuantCodes,
    dequantize,
    group_of,
    quantize_tensor,
    set_to_codes,
)
from occamtune.compress.layout import linear_layout
from occamtune.compress.record import StepRecord, record_of
from occamtune.compress.storage import codes_of, round_as_stored
from occamtune.errors import ConfigError
from occamtune.models import TaskModel, family_of, find_family

ROUNDINGS = ("nearest", "gptq")


@dataclass(frozen=True)
class QuantizeConfig(CompressionConfig):
    """Weight-only k-bit quantization.

    Attributes:
        bits: bits per weight, 2..8.
        group_size: weights per scale along the input dimension; 0 = one scale per output row.
        embeddings: also quantize the embedding matrices (word, position, token type).
        dynamic: use int8 dynamic quantization of the Linear layers at inference (CPU speed;
            None: only when `bits` is 8).
        epochs: quantization-aware training epochs before rounding (0: round the weights as
            they are; None: the run's own number of epochs).
        lr: learning rate of quantization-aware training (None: a tenth of the run's).
        rounding: "nearest" (round each weight to its nearest code) or "gptq" (round the Linear
            weights column by column, correcting the output error on calibration data).
        embedding_bits: bits of the embedding matrices (None: `bits`); embeddings are looked up,
            not multiplied, and stand coarser codes than the Linear weights.
        ffn_bits: bits of the feed-forward Linears (None: `bits`); they hold two thirds of an
            encoder layer's weights, so coarser codes there save most of the bytes.
        hidden_weight: in quantization-aware training, weight of the MSE between each layer's
            output and the teacher's (when the teacher has as many layers of the same width);
            0 learns from the teacher's soft labels only. Off by default: where compared, weight
            1 made no difference beyond the noise (docs/benchmarks/compression.md and the
            candidates in docs/benchmarks/search.md).
    """

    name = "quantize"
    search_order = 70
    level_rank = 0  # fewer bits first: they shrink every matrix
    search_dims = (
        SearchDim("bits", (8, 6, 4, 3), ok=lambda v: 2 <= v <= 8 or v == 32,
                  doc="weight bits; 32 means no quantization."),
        SearchDim("group_size", 64, ok=lambda v: v >= 1, rule=">= 1",
                  doc="quantization group size."),
        SearchDim("ffn_bits", 0, ok=lambda v: isinstance(v, int) and (v == 0 or 2 <= v <= 8),
                  rule="0 or an integer in [2, 8]",
                  doc="bits of the feed-forward Linears, two thirds of a layer's weights (0: "
                      "`bits`, as every other Linear)."),
        SearchDim("embedding_bits", 0, ok=lambda v: isinstance(v, int) and (v == 0 or 2 <= v <= 8),
                  rule="0 or an integer in [2, 8]",
                  doc="bits of the embedding matrices (0: `bits`). A tied output layer is the "
                      "word-embedding matrix, so a generator's logits read these codes: "
                      "llama.cpp's 4-bit types keep it at 8 bits."),
        SearchDim("quant_epochs", (0.0,), ok=lambda v: v >= 0, retry=True,
                  when=lambda p: p.get("bits", 32) != 32,
                  doc="quantization-aware training epochs before rounding (0: none). Every "
                      "candidate gets the first value; the later ones are retries: QAT keeps a "
                      "pipeline's bytes and costs epochs of training, so the search spends it "
                      "only on a candidate that missed the tolerance narrowly and would be the "
                      "smallest yet (see `search/schedule.py`)."),
        SearchDim("quant_lr", None, ok=lambda v: v is None or v > 0, rule="> 0 (or unset)",
                  doc="learning rate of quantization-aware training (None: a tenth of the run's)."),
        SearchDim("rounding", "gptq", ok=lambda v: v in ROUNDINGS,
                  rule=f"one of {', '.join(ROUNDINGS)}",
                  doc='how quantization rounds the Linear weights: "gptq" (on the run\'s '
                      'calibration batches, about a minute per candidate) or "nearest".'),
        SearchDim("qat_rounding", "nearest", ok=lambda v: v in ROUNDINGS,
                  rule=f"one of {', '.join(ROUNDINGS)}",
                  doc='how a candidate with quantization-aware training rounds after it: '
                      '"nearest", the rounding it trained with, by default.'),
    )

    bits: int = 8
    group_size: int = 64
    embeddings: bool = True
    dynamic: bool | None = None
    epochs: float | None = 0
    lr: float | None = None
    rounding: str = "nearest"
    embedding_bits: int | None = None
    ffn_bits: int | None = None
    hidden_weight: float = 0.0

    def __post_init__(self) -> None:
        check_range(self, "bits", 2, 8)
        for name in ("embedding_bits", "ffn_bits"):
            if getattr(self, name) is not None:
                check_range(self, name, 2, 8)
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"quantize: rounding must be one of {', '.join(ROUNDINGS)}, "
                              f"got {self.rounding!r}")
        if self.lr is not None:
            check_range(self, "lr", 0.0, 1.0, lo_open=True)
        if self.epochs != 0:
            check_epochs(self)
        for name in ("bits", "embedding_bits", "ffn_bits"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"quantize: {name} must be an integer in [2, 8], got {value!r}")
        check_range(self, "group_size", 0, 1 << 20)
        check_range(self, "hidden_weight", 0.0, 1e6)
        if not isinstance(self.embeddings, bool):
            raise ConfigError(f"quantize: embeddings must be true or false, got {self.embeddings!r}")
        if self.dynamic is not None and not isinstance(self.dynamic, bool):
            raise ConfigError(f"quantize: dynamic must be true, false or null (int8 kernels at 8 "
                              f"bits only), got {self.dynamic!r}")

    @classmethod
    def from_point(cls, point: Point, space: Any) -> QuantizeConfig | None:
        if point.get("bits", 32) == 32:
            return None
        epochs = float(point.get("quant_epochs", space.quant_epochs[0]))
        return cls(bits=int(point["bits"]), group_size=space.group_size, epochs=epochs,
                   ffn_bits=space.ffn_bits or None,
                   embedding_bits=space.embedding_bits or None,
                   lr=space.quant_lr if epochs else None,
                   rounding=space.qat_rounding if epochs else space.rounding)

    @classmethod
    def level(cls, point: Point) -> float:
        return -point.get("bits", 32)


def quantized_codes(model: TaskModel, name: str) -> QuantCodes | None:
    """The k-bit codes of the model's tensor `name` (e.g. `head.dense.weight`) when its
    compression record holds codes that the tensor still equals."""
    tensor = model.state_dict(keep_vars=True).get(name)
    return None if tensor is None else codes_of(record_of(model).codes, name, tensor)


def ffn_linears(model: TaskModel, method: str = "quantize with ffn_bits") -> set[int]:
    """ids of the feed-forward Linears of each encoder layer (up, gate and down).

    Raises:
        ModelError: the model's family is unknown (`method` names who asks).
    """
    family = family_of(model.encoder, method)
    return {id(m) for layer in family.get_layers(model.encoder) for m in family.ffn_linears(layer)}


def bits_of(module: nn.Module, config: QuantizeConfig, ffn: set[int] | None = None) -> int:
    """The code width of one target module (`ffn`: the ids of the feed-forward Linears)."""
    if isinstance(module, nn.Embedding) and config.embedding_bits is not None:
        return config.embedding_bits
    if config.ffn_bits is not None and ffn and id(module) in ffn:
        return config.ffn_bits
    return config.bits


def quantize_targets(model: TaskModel, embeddings: bool) -> list[tuple[str, nn.Module]]:
    """Every nn.Linear of the model (encoder and head) and, optionally, the encoder's embeddings."""
    seen: set[int] = set()
    out = []
    for name, module in model.named_modules():
        wanted = isinstance(module, nn.Linear) or (
            embeddings and isinstance(module, nn.Embedding) and name.startswith("encoder."))
        if wanted and id(module) not in seen:
            seen.add(id(module))
            out.append((name, module))
    return out


class FakeQuantize(nn.Module):
    """A weight parametrization: the k-bit value forward, the identity backward (straight-through)."""

    def __init__(self, bits: int, group_size: int) -> None:
        super().__init__()
        self.bits, self.group_size = bits, group_size

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        codes, scales = quantize_tensor(weight, self.bits, self.group_size)
        rounded = dequantize(codes, scales, group_of(weight.shape[1], self.group_size))
        return weight + (rounded.to(weight.dtype) - weight).detach()


def train_quantized(model: TaskModel, config: QuantizeConfig, ctx: CompressContext) -> TaskModel:
    """Quantization-aware training of every target weight (float weights kept, not yet
    rounded), learning from the pipeline's uncompressed model (ctx.teacher), else from the float
    model itself: its soft labels, and its layer outputs when it has the same layers (a
    distilled student's teacher has more)."""
    finetune = need_finetune(ctx, "quantize with epochs")
    teacher = ctx.teacher if ctx.teacher is not None else copy.deepcopy(model)
    ffn = ffn_linears(model) if config.ffn_bits is not None else set()
    same_layers = _layer_shape(model) is not None and _layer_shape(teacher) == _layer_shape(model)
    # DistilBERT's mix: T = 2, half soft, half gold labels; plus the layers' MSE when they match
    soft = distill.DistillConfig(hidden_weight=config.hidden_weight if same_layers else 0.0)
    for _, module in quantize_targets(model, config.embeddings):
        parametrize.register_parametrization(
            module, "weight", FakeQuantize(bits_of(module, config, ffn), config.group_size))
    try:
        model = distill.train_with_teacher(model, teacher, finetune, soft, epochs=config.epochs,
                                   lr=config.lr or _run_lr(ctx))
    finally:
        for _, module in quantize_targets(model, config.embeddings):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    return model


def _layer_shape(model: TaskModel) -> tuple[int, int] | None:
    """(encoder layers, hidden width); None for a family without an adapter."""
    family = find_family(model.encoder)
    if family is None:
        return None
    return len(family.get_layers(model.encoder)), int(model.encoder.config.hidden_size)


def _run_lr(ctx: CompressContext) -> float | None:
    """A tenth of the run's learning rate, when the context knows it (else the finetune's own)."""
    return ctx.lr / 10 if ctx.lr else None


@register(QuantizeConfig)
def _quantize(model: TaskModel, config: QuantizeConfig,
              ctx: CompressContext) -> tuple[TaskModel, StepRecord]:
    if config.rounding == "gptq" and ctx.calibration is None:
        raise ConfigError("quantize: rounding='gptq' needs calibration batches: give a "
                          "CompressContext with `calibration` (e.g. `occamtune compress` on a run)")
    step = StepRecord()
    linear_layout(model, step)  # GPT-2's Conv1D projections become nn.Linear, quantized as such
    if config.epochs != 0:
        model = train_quantized(model, config, ctx)
    targets = dict(quantize_targets(model, config.embeddings))
    if config.epochs != 0:
        reround_trained(model, {f"{name}.weight" for name in targets}, step)
    n_weights, ffn = 0, ffn_linears(model) if config.ffn_bits is not None else set()
    inputs = LayerInputs(model, _layer_names(model), ctx.calibration) if ctx.calibration else None
    for names, gptq in _rounding_order(model, targets, config):
        hess = inputs.hessians({n: targets[n] for n in names}) if gptq and inputs else {}
        for name in names:
            module, bits = targets[name], bits_of(targets[name], config, ffn)
            if gptq:
                codes, scales = gptq_round(module.weight, hess[name], bits, config.group_size)
            else:
                codes, scales = quantize_tensor(module.weight, bits, config.group_size)
            quant = QuantCodes(codes, scales, bits, group_of(codes.shape[1], config.group_size))
            set_to_codes(module.weight, quant)
            step.codes[f"{name}.weight"] = quant
            n_weights += codes.numel()
    round_as_stored(model, {**record_of(model).codes, **step.codes})  # what the artifact stores
    step.int8_runtime = config.bits == 8 if config.dynamic is None else config.dynamic
    step.facts.update(quantized_weights=n_weights, bits=config.bits)
    return model, step


def reround_trained(model: TaskModel, skip: set[str], step: StepRecord) -> None:
    """Round again, each to its own code width, the tensors an earlier step stored as codes
    (a codebook's centroids with `centroid_bits`) that quantization-aware training moved off
    them; else the artifact would store them as fp16 numbers, at two or four times the bytes
    their step was asked for. `skip`: the tensors this step rounds itself."""
    tensors = model.state_dict(keep_vars=True)
    for name, quant in record_of(model).codes.items():
        tensor = tensors.get(name)
        if (name in skip or tensor is None or tensor.numel() != quant.codes.numel()
                or codes_of({name: quant}, name, tensor) is not None):
            continue
        trained = tensor.detach().float().reshape(quant.codes.shape)
        again = QuantCodes(*quantize_tensor(trained, quant.bits, quant.group), quant.bits, quant.group)
        set_to_codes(tensor, again)
        step.codes[name] = again


def _rounding_order(model: TaskModel, targets: dict[str, nn.Module],
                    config: QuantizeConfig) -> list[tuple[list[str], bool]]:
    """Groups of target names rounded together, in order, each with whether GPTQ rounds it:
    with GPTQ, the embeddings first to the nearest code, then the Linears layer by layer (each
    layer's Hessians measured after the earlier layers are rounded)."""
    if config.rounding != "gptq":
        return [(list(targets), False)]
    # A trimmed vocabulary's low-rank basis sees the codes of every token, used or not, in
    # calibration: its Hessian would weigh the wrong inputs.
    basis = _embedding_linears(model)
    linears = [n for n, m in targets.items() if isinstance(m, nn.Linear) and id(m) not in basis]
    rest = [n for n in targets if n not in linears]
    return [(rest, False), *((names, True) for names in blocks(linears, _layer_names(model)))]


def _embedding_linears(model: nn.Module) -> set[int]:
    """ids of the Linears inside a trimmed vocabulary (its low-rank basis)."""
    from occamtune.compress.vocab import TrimmedEmbedding

    return {id(m) for t in model.modules() if isinstance(t, TrimmedEmbedding)
            for m in t.modules() if isinstance(m, nn.Linear)}


def _layer_names(model: nn.Module) -> list[str] | None:
    """The module names of the transformer layers (None for a family without an adapter)."""
    family = find_family(getattr(model, "encoder", model))
    if family is None:
        return None
    ids = {id(m) for m in family.get_layers(model.encoder)}
    return [n for n, m in model.named_modules() if id(m) in ids]


def _residual_linears(model: nn.Module) -> set[int]:
    """ids of the Linears projecting back onto the residual stream (attention output, FFN
    down); for a family without an adapter, BERT's names (`*.output.dense`)."""
    encoder = getattr(model, "encoder", model)
    family = find_family(encoder)
    if family is None:
        return {id(m) for n, m in model.named_modules() if n.endswith("output.dense")}
    return {id(family.part(layer, role)) for layer in family.get_layers(encoder)
            for role in ("o", "down")}


def to_int8_runtime(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the Linear layers for fast CPU inference (returns a copy).

    Weights are re-rounded to int8 per output channel and activations quantized per batch, so
    outputs differ slightly from the stored model's; use for serving, not for exact evaluation.
    The Linear layers that project back onto the residual stream (`*.output.dense` in BERT: after
    attention and after the feed-forward GELU) stay in float: their inputs have outliers that a
    per-tensor int8 scale flattens: keeping them in float keeps nearly all of the accuracy that
    int8 on every Linear layer loses (checked by hand on CoNLL-2003 dev, not a benchmark).
    """
    import warnings

    from torch.ao.quantization import quantize_dynamic

    # torch 2.13 marks torch.ao eager quantization deprecated in favour of torchao, which has no
    # CPU int8 dynamic kernels for this torch yet; the warnings tell a user nothing to act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        keep = _embedding_linears(model) | _residual_linears(model)
        names = {name for name, m in model.named_modules()
                 if isinstance(m, nn.Linear) and id(m) not in keep}
        return quantize_dynamic(model, names, dtype=torch.qint8, inplace=False)
