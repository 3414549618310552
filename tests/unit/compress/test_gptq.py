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
from tests.fixtures.tiny_models import NER_LABELS, tiny_context, tiny_task_model


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


def _gptq_codes(model: nn.Module, ctx: CompressContext, keep: bool,
                monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The GPTQ codes of every quantized weight, and how often each layer ran, with the layer
    inputs kept between blocks (`keep`) or a pass through the model per block."""
    import functools
    import importlib

    from occamtune.compress.gptq import LayerInputs

    # the package exports a `quantize` function under the module's name
    quantize_module = importlib.import_module("occamtune.compress.quantize")

    monkeypatch.setattr(quantize_module, "LayerInputs", functools.partial(LayerInputs, keep=keep))
    layers = quantize_module._layer_names(model) or []
    modules = dict(model.named_modules())
    calls = dict.fromkeys(layers, 0)
    hooks = [modules[n].register_forward_pre_hook(lambda *_, n=n: calls.__setitem__(n, calls[n] + 1))
             for n in layers]
    out = compress(model, [QuantizeConfig(bits=3, group_size=8, rounding="gptq")], ctx)
    for hook in hooks:
        hook.remove()
    codes = {name: quantized_codes(out, f"{name}.weight").codes
             for name, m in out.named_modules() if isinstance(m, nn.Linear)
             and quantized_codes(out, f"{name}.weight") is not None}
    return codes, calls


# Families whose layers all take the same arguments besides the hidden states: their inputs are
# kept between blocks (the tiny Gemma 3's two layers are both local). T5 (position bias from its
# first layer) and ALBERT (one layer called at every depth) get a pass through the model per block.
KEPT = {"bert", "roberta", "electra", "distilbert", "deberta-v2", "llama", "mistral", "qwen2",
        "gemma3_text", "gpt2", "bart"}


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "distilbert", "deberta-v2",
                                    "albert", "llama", "mistral", "qwen2", "gemma3_text", "gpt2",
                                    "t5", "t5-gated", "bart"])
def test_kept_layer_inputs_give_the_codes_of_a_pass_per_block(
        family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Running each layer on the inputs kept from the layer before it (GPTQ's layer-by-layer
    pass) rounds every weight as a pass through the whole model per block does."""
    from occamtune.compress.gptq import LayerInputs
    from occamtune.compress.quantize import _layer_names
    from tests.unit.compress.test_families import batches, build

    train = batches("ner", n=3)
    ctx = CompressContext(calibration=lambda: iter(train))
    kept, _ = _gptq_codes(build(family, "ner"), ctx, True, monkeypatch)
    passes, _ = _gptq_codes(build(family, "ner"), ctx, False, monkeypatch)
    assert kept.keys() == passes.keys() and len(kept) > 2
    for name in kept:
        same = float((kept[name] == passes[name]).float().mean())
        assert same > 0.99, (name, same)
    model = build(family, "ner")
    assert LayerInputs(model, _layer_names(model), ctx.calibration).shared() == (family in KEPT)


@pytest.mark.parametrize("layers", [2, 6])
def test_kept_layer_inputs_run_each_layer_a_number_of_times_that_does_not_grow_with_depth(
        layers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tiny_context(train=False)
    n = len(list(ctx.calibration()))
    kept, kept_calls = _gptq_codes(tiny_task_model(layers=layers), ctx, True, monkeypatch)
    passes, pass_calls = _gptq_codes(tiny_task_model(layers=layers), ctx, False, monkeypatch)
    assert all(float((kept[k] == passes[k]).float().mean()) > 0.99 for k in kept)
    # per layer: the check pass; per batch its inputs caught, measured, run to give the next
    # layer its inputs, and the task head's own pass
    assert max(kept_calls.values()) <= 1 + 4 * n, kept_calls
    assert min(pass_calls.values()) == (layers + 1) * n  # a pass per layer and the head's


def test_layers_with_their_own_rotary_tables_get_a_pass_per_block() -> None:
    """A Gemma 3 with a local and a global layer: each takes its own rotary table, so the
    inputs kept from one layer would run the next with the wrong one."""
    import transformers as tf

    from occamtune.compress.gptq import LayerInputs
    from occamtune.compress.quantize import _layer_names
    from occamtune.models import HeadConfig, TaskModel, encoder_from_config
    from tests.unit.compress.test_families import CONFIGS, batches

    config = CONFIGS["gemma3_text"]()
    config.layer_types = ["sliding_attention", "full_attention"]
    model = TaskModel(encoder_from_config(tf.AutoModel, config),
                      HeadConfig(task="ner", labels=NER_LABELS)).eval()
    train = batches("ner")
    assert not LayerInputs(model, _layer_names(model), lambda: iter(train)).shared()
