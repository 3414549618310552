"""k-bit quantization: codes, scales, bit packing, exactness, and bytes on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from occamtune.compress import (
    CompressContext,
    QuantizeConfig,
    compress,
    save_artifact,
    to_int8_runtime,
)
from occamtune.compress.artifact import read_occ
from occamtune.compress.packing import pack_bits, unpack_bits
from occamtune.compress.quantize import dequantize, quantize_tensor
from occamtune.compress.record import record_of
from occamtune.errors import ConfigError
from tests.fixtures.tiny_models import tiny_batches, tiny_task_model


@pytest.mark.parametrize("bits", range(2, 9))
def test_pack_bits_is_n_times_k_over_8_and_round_trips(bits: int) -> None:
    n = 1001
    values = np.random.default_rng(bits).integers(0, 2**bits, n).astype(np.uint8)
    packed = pack_bits(values, bits)
    assert len(packed) == -(-n * bits // 8)
    np.testing.assert_array_equal(unpack_bits(packed, bits, n), values)


@pytest.mark.parametrize(("bits", "group"), [(4, 16), (3, 0), (8, 64), (2, 5)])
def test_quantize_tensor_error_within_half_a_step(bits: int, group: int) -> None:
    w = torch.randn(6, 40)
    codes, scales = quantize_tensor(w, bits, group)
    qmax = 2 ** (bits - 1) - 1
    assert codes.dtype == torch.int8 and int(codes.abs().max()) <= qmax
    n_groups = 1 if group == 0 else -(-40 // group)
    assert scales.shape == (6, n_groups)
    assert torch.equal(scales, scales.half().float()), "scales must be exact in fp16"
    g = 40 if group == 0 else group
    step = scales.repeat_interleave(g, dim=1)[:, :40]
    assert ((dequantize(codes, scales, g) - w).abs() <= step / 2 + 1e-6).all()


def test_quantize_covers_linears_and_embeddings() -> None:
    model = compress(tiny_task_model(), [QuantizeConfig(bits=4, group_size=16)], CompressContext())
    targets = {n: m for n, m in model.named_modules()
               if isinstance(m, nn.Linear) or (isinstance(m, nn.Embedding) and n.startswith("encoder."))}
    for name, module in targets.items():
        q = record_of(model).codes[f"{name}.weight"]
        assert torch.equal(module.weight, dequantize(q.codes, q.scales, q.group))
        assert module.weight.unique().numel() <= 16 * q.scales.numel()


@pytest.mark.parametrize("epochs", [0, 1])
def test_ffn_bits_apply_to_the_feed_forward_linears_only(epochs: int) -> None:
    from occamtune.compress.quantize import quantized_codes
    from tests.fixtures.tiny_models import tiny_context

    model = compress(tiny_task_model(), [QuantizeConfig(bits=4, ffn_bits=2, group_size=8, epochs=epochs)],
                     tiny_context())
    bits = {n: quantized_codes(model, f"{n}.weight").bits for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Embedding))
            and quantized_codes(model, f"{n}.weight") is not None}
    ffn = {n for n in bits if n.endswith("intermediate.dense")
           or (n.endswith(".output.dense") and ".attention." not in n)}
    assert len(ffn) == 2 * len(model.encoder.encoder.layer)
    assert {bits[n] for n in ffn} == {2}
    assert {b for n, b in bits.items() if n not in ffn} == {4}  # attention, embeddings, head
    assert any(".attention." in n for n in bits) and any(n.startswith("head.") for n in bits)
    with pytest.raises(ConfigError, match="ffn_bits"):
        QuantizeConfig(ffn_bits=9)


def test_4bit_artifact_much_smaller_than_fp32_safetensors(tokenizer, tmp_path) -> None:
    from occamtune.models import WEIGHTS_FILE, save_model

    model = tiny_task_model(layers=4, hidden=64)
    save_model(model, tokenizer, tmp_path / "fp32")
    fp32 = (tmp_path / "fp32" / WEIGHTS_FILE).stat().st_size
    small = compress(model, [QuantizeConfig(bits=4, group_size=32)], CompressContext())
    sizes = save_artifact(small, tokenizer, tmp_path / "q4", meta={"fp32_bytes": fp32})
    assert sizes["model_occ"] < fp32 / 4, sizes
    assert sizes["ratio"] > 4
    save_artifact(small, tokenizer, tmp_path / "raw", codec="none")
    manifest, _ = read_occ(tmp_path / "raw" / "model.occ")
    quant = [t for t in manifest["tensors"] if t["enc"] == "quant"]
    assert {t["bits"] for t in quant} == {4}
    for t in quant:  # without an entropy coder: codes packed at 4 bits (fewer bytes when sparse)
        assert t["parts"]["codes"][1] <= -(-int(np.prod(t["shape"])) * 4 // 8)
    packed_codes = sum(t["parts"]["codes"][1] for t in quant)
    manifest, _ = read_occ(tmp_path / "q4" / "model.occ")
    coded = [t for t in manifest["tensors"] if t["enc"] == "quant"]
    assert {t.get("layout") for t in coded} == {None}  # 4 bits divide 8: packed
    others = (tmp_path / "raw" / "model.occ").stat().st_size - packed_codes
    assert sizes["model_occ"] < others + 0.95 * packed_codes  # Gaussian codes: below 4 bits each


@pytest.mark.parametrize(("bits", "layout"), [(3, "bytes"), (5, "bytes"), (4, None), (2, None)])
def test_codes_one_per_byte_under_zstd_when_bits_do_not_divide_8(bits: int, layout) -> None:
    import zstandard

    from occamtune.compress.packing import decode_quant, encode_quant

    torch.manual_seed(0)  # the size comparison is of one draw: not of whatever ran before
    w = torch.randn(512, 512)  # Gaussian weights: most codes near 0
    codes, scales = quantize_tensor(w, bits, 64)
    entry, parts = encode_quant(codes, scales, bits, 64, byte_codes=True)
    assert entry.get("layout") == layout
    back, back_scales = decode_quant({**entry, "shape": [512, 512]}, parts)
    assert torch.equal(back, codes) and torch.equal(back_scales, scales)
    if layout:  # after zstd, whole codes per byte beat codes straddling bytes
        _, packed = encode_quant(codes, scales, bits, 64, byte_codes=False)
        # every part that codes the codes: a sparse packing keeps a bitmask beside them
        size = lambda p: sum(len(zstandard.ZstdCompressor(level=19).compress(v))
                             for k, v in p.items() if k != "scales")
        assert size(parts) < 0.95 * size(packed)


def test_int8_runtime_stays_close() -> None:
    model = compress(tiny_task_model(), [QuantizeConfig(bits=8, group_size=0)], CompressContext())
    batch = tiny_batches(n=1)[0]
    with torch.no_grad():
        ref = model(**batch)
        fast = to_int8_runtime(model)(**batch)
    assert any(type(m).__name__ == "Linear" and "quantized" in type(m).__module__
               for m in to_int8_runtime(model).modules())
    torch.testing.assert_close(fast, ref, atol=0.1, rtol=0.1)


def test_fake_quantize_rounds_forward_and_passes_gradients_straight_through() -> None:
    from occamtune.compress.quantize import FakeQuantize

    w = torch.randn(4, 16, requires_grad=True)
    out = FakeQuantize(3, 8)(w)
    codes, scales = quantize_tensor(w, 3, 8)
    torch.testing.assert_close(out, dequantize(codes, scales, 8))
    (out * torch.arange(16.0)).sum().backward()
    torch.testing.assert_close(w.grad, torch.arange(16.0).expand(4, 16))


def test_quantization_aware_training_trains_then_leaves_exact_codes() -> None:
    from occamtune.compress.quantize import quantized_codes
    from occamtune.tasks import get_task
    from tests.fixtures.tiny_models import tiny_context

    batches = tiny_batches()
    task = get_task("ner")

    def loss(m: nn.Module) -> float:
        with torch.no_grad():
            return sum(float(task.loss(m(**b), b)) for b in batches)

    untrained = compress(tiny_task_model(), [QuantizeConfig(bits=3, group_size=8)], CompressContext())
    calls: list[float] = []
    qat = compress(tiny_task_model(), [QuantizeConfig(bits=3, group_size=8, epochs=10)],
                   tiny_context(calls=calls))
    assert len(calls) == 40 and calls[-1] < calls[0]
    for _, module in qat.named_modules():  # parametrizations gone, weights are their codes
        assert not hasattr(module, "parametrizations")
    assert quantized_codes(qat, "encoder.encoder.layer.0.attention.self.query.weight") is not None
    assert quantized_codes(qat, "encoder.embeddings.word_embeddings.weight") is not None
    assert loss(qat) < 0.8 * loss(untrained)


def test_quantization_aware_training_runs_at_a_tenth_of_the_run_lr_with_soft_labels() -> None:
    import dataclasses

    from tests.fixtures.tiny_models import tiny_context

    ctx = dataclasses.replace(tiny_context(), lr=2e-3)
    seen: dict = {}
    inner = ctx.finetune

    def finetune(model, *, loss_fn=None, step_hook=None, epochs=None, lr=None):
        seen.update(lr=lr, loss_fn=loss_fn)
        return inner(model, loss_fn=loss_fn, epochs=epochs, lr=lr)

    ctx.finetune = finetune
    compress(tiny_task_model(), [QuantizeConfig(bits=4, group_size=8, epochs=1)], ctx)
    assert seen["lr"] == pytest.approx(2e-4) and seen["loss_fn"] is not None
    compress(tiny_task_model(), [QuantizeConfig(bits=4, group_size=8, epochs=1, lr=5e-5)], ctx)
    assert seen["lr"] == 5e-5


def test_int8_kernels_by_default_only_at_8_bits() -> None:
    ctx = CompressContext()
    def runtime(config: QuantizeConfig) -> bool:
        return record_of(compress(tiny_task_model(), [config], ctx)).int8_runtime

    assert {bits: runtime(QuantizeConfig(bits=bits)) for bits in (8, 4)} == {8: True, 4: False}
    assert runtime(QuantizeConfig(bits=4, dynamic=True))
    assert not runtime(QuantizeConfig(bits=8, dynamic=False))
    with pytest.raises(ConfigError, match="dynamic must be true, false or null"):
        QuantizeConfig(dynamic="yes")


def test_quantization_aware_training_in_a_pipeline_learns_from_the_uncompressed_model(monkeypatch) -> None:
    """QAT after other steps learns from the model the pipeline started from (whose logits
    differ from the pruned model's), so it can recover their losses too."""
    import importlib

    from occamtune.compress import PruneConfig
    from tests.fixtures.tiny_models import tiny_context

    distill = importlib.import_module("occamtune.compress.distill")
    teachers = []
    monkeypatch.setattr(distill, "train_with_teacher",
                        lambda model, teacher, *a, **k: teachers.append(teacher) or model)
    model = tiny_task_model()
    batch = tiny_batches(n=1)[0]
    original = model.eval()(**batch).detach()
    compress(model, [PruneConfig(sparsity=0.9), QuantizeConfig(bits=4, group_size=8, epochs=1)],
             tiny_context())
    torch.testing.assert_close(teachers[0].eval()(**batch), original)
    assert not torch.allclose(model.eval()(**batch), original, atol=1e-3)


def test_quantization_aware_training_matches_the_teachers_layers_when_it_has_the_same(monkeypatch) -> None:
    import importlib

    from occamtune.compress import DistillConfig
    from tests.fixtures.tiny_models import tiny_context

    distill = importlib.import_module("occamtune.compress.distill")
    weights = []
    monkeypatch.setattr(distill, "train_with_teacher",
                        lambda model, teacher, finetune, config, *a, **k: weights.append(config.hidden_weight) or model)
    qat = [QuantizeConfig(bits=4, group_size=8, epochs=1, hidden_weight=0.5)]
    compress(tiny_task_model(), qat, tiny_context())  # teacher: the float model itself
    compress(tiny_task_model(), [DistillConfig(layers=1, epochs=1), *qat], tiny_context())
    assert weights == [0.5, 1.0, 0.0]  # QAT; the distillation; QAT of the 1-layer student
    with pytest.raises(ConfigError, match="hidden_weight"):
        QuantizeConfig(hidden_weight=-1.0)
