"""GPTQ rounding: the same codes format as round-to-nearest, a lower output error on the
calibration inputs, and layer-by-layer use inside `quantize(rounding="gptq")`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from occamtune.compress import CompressContext, QuantizeConfig, compress
from occamtune.compress.gptq import blocks, gptq_round, hessians
from occamtune.compress.quantize import dequantize, quantize_tensor, quantized_codes
from occamtune.errors import ConfigError
from tests.fixtures.tiny_models import tiny_context, tiny_task_model


def test_identity_hessian_gives_round_to_nearest() -> None:
    w = torch.randn(8, 48)
    codes, scales = gptq_round(w, torch.eye(48), bits=3, group_size=16, damp=0.0)
    ref_codes, ref_scales = quantize_tensor(w, 3, 16)
    assert torch.equal(codes, ref_codes) and torch.equal(scales, ref_scales)


@pytest.mark.parametrize(("bits", "group"), [(3, 16), (4, 0), (2, 32)])
def test_output_error_lower_than_round_to_nearest_on_correlated_inputs(bits: int, group: int) -> None:
    g = torch.Generator().manual_seed(bits)
    mix = torch.randn(64, 64, generator=g)
    x = torch.randn(2000, 64, generator=g) @ mix  # correlated input features
    w = torch.randn(32, 64, generator=g)
    h = x.T @ x / len(x)
    width = group or 64

    def out_err(codes: torch.Tensor, scales: torch.Tensor) -> float:
        return float(((x @ (dequantize(codes, scales, width) - w).T) ** 2).mean())

    gptq, rtn = out_err(*gptq_round(w, h, bits, group)), out_err(*quantize_tensor(w, bits, group))
    assert gptq < 0.9 * rtn, (gptq, rtn)
    codes, scales = gptq_round(w, h, bits, group)
    qmax = 2 ** (bits - 1) - 1
    assert codes.dtype == torch.int8 and int(codes.abs().max()) <= qmax
    assert torch.equal(scales, scales.half().float())


def test_inputs_never_seen_are_rounded_to_nearest() -> None:
    w = torch.randn(4, 8)
    h = torch.zeros(8, 8)
    codes, _ = gptq_round(w, h, bits=4, group_size=0)
    assert torch.equal(codes, quantize_tensor(w, 4, 0)[0])


def test_hessians_leave_padding_out() -> None:
    lin = nn.Linear(3, 2)
    model = nn.Sequential(lin)
    x = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0]]])  # (B=1, T=2, 3); the second token is padding

    class Wrap(nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return model(input_ids)

    wrap = Wrap()
    wrap.add_module("inner", model)
    h = hessians(wrap, {"lin": lin}, lambda: [{"input_ids": x, "attention_mask": torch.tensor([[1, 0]])}])
    torch.testing.assert_close(h["lin"], torch.diag(torch.tensor([1.0, 0.0, 0.0])))


def test_blocks_group_linears_by_layer_in_order() -> None:
    names = ["encoder.encoder.layer.0.attention.self.query", "encoder.encoder.layer.0.output.dense",
             "encoder.encoder.layer.1.intermediate.dense", "head.classifier"]
    assert blocks(names) == [names[:2], [names[2]], [names[3]]]


def test_quantize_with_gptq_keeps_exact_codes_and_drifts_less_on_calibration() -> None:
    ctx = tiny_context(train=False)
    base = tiny_task_model()
    with torch.no_grad():
        ref = [base(**b) for b in ctx.calibration()]

    def drift(m: nn.Module) -> float:
        with torch.no_grad():
            return sum(float(((m(**b) - r) ** 2).mean()) for b, r in zip(ctx.calibration(), ref))

    cfg = {"bits": 2, "group_size": 8, "embedding_bits": 4}
    gptq = compress(tiny_task_model(), [QuantizeConfig(**cfg, rounding="gptq")], ctx)
    rtn = compress(tiny_task_model(), [QuantizeConfig(**cfg)], ctx)
    assert drift(gptq) < drift(rtn)
    for name, module in gptq.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)) and name.startswith(("encoder.", "head.")):
            codes = quantized_codes(gptq, f"{name}.weight")
            assert codes is not None, name
            assert codes.bits == (4 if isinstance(module, nn.Embedding) else 2), name


def test_gptq_needs_calibration_and_a_known_rounding() -> None:
    with pytest.raises(ConfigError, match="calibration"):
        compress(tiny_task_model(), [QuantizeConfig(bits=4, rounding="gptq")], CompressContext())
    with pytest.raises(ConfigError, match="rounding must be one of nearest, gptq"):
        QuantizeConfig(rounding="stochastic")
    with pytest.raises(ConfigError, match="embedding_bits"):
        QuantizeConfig(embedding_bits=1)
