"""The ONNX export of a tiny trained model of each family other than BERT answers like the
torch model: fp32 logits within 1e-4 of the largest (TorchScript exporter: seconds), and the
4-bit export of a 4-bit quantized model (`MatMulNBits` from its own codes) keeps its
predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from occamtune.compress import QuantizeConfig, compress, save_artifact
from occamtune.export import export_run
from occamtune.models import load_model, save_model
from tests.fixtures.tiny import tiny_tokenizer
from tests.fixtures.tiny_models import tiny_batches, tiny_finetune
from tests.unit.compress.test_families import build

FAMILIES = ("distilbert", "llama", "gpt2", "t5", "bart")
RTOL = 1e-4  # of the largest logit: only the order of float sums differs (test_export_nbits.py)


def _batch() -> dict[str, torch.Tensor]:
    """Another shape than the exporter's dummy (2, 8), with a padded tail."""
    batch = tiny_batches(n=1, batch=3, seq=11, seed=3, task="ner", vocab=100)[0]
    batch["attention_mask"][1, 7:] = 0
    return {k: v for k, v in batch.items() if k not in ("labels", "first")}


def _close(onnx: torch.Tensor, torch_logits: torch.Tensor, what: str) -> None:
    scale = float(torch_logits.abs().max())
    torch.testing.assert_close(onnx, torch_logits, atol=RTOL * scale, rtol=0,
                               msg=lambda m: f"{what}: {m}")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_export_answers_like_torch(family: str, tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path / "tok")
    train = tiny_batches(n=1, batch=4, seq=12, task="ner", vocab=100)
    model = tiny_finetune(train)(build(family, "ner")).eval()
    batch = _batch()
    with torch.no_grad():
        expected = model(**batch)
    save_model(model, tok, tmp_path / "run")
    export_run(tmp_path / "run", tmp_path / "onnx", exporter="torchscript", weights="fp32",
               notes=False)
    onnx, _, _ = load_model(tmp_path / "onnx")
    _close(onnx(**batch), expected, f"{family} fp32")

    small = compress(model, [QuantizeConfig(bits=4, group_size=16)])
    with torch.no_grad():
        expected = small(**batch)
    save_artifact(small, tok, tmp_path / "small")
    info = export_run(tmp_path / "small", tmp_path / "int4", exporter="torchscript",
                      weights="int4", notes=False)
    assert info["nbits"]["rounded"] == 0, info  # every Linear from its own codes
    onnx, _, _ = load_model(tmp_path / "int4")
    got = onnx(**batch)
    real = batch["attention_mask"].bool()
    assert torch.equal(got.argmax(-1)[real], expected.argmax(-1)[real]), family
    _close(got, expected, f"{family} int4")


@pytest.mark.slow  # torch.export: about 10 s for this 2-layer model, where TorchScript takes 1
def test_dynamo_export_answers_like_torch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The default exporter (torch.export) takes DistilBERT without falling back."""
    from occamtune.export import OnnxTaskModel, export_onnx

    model = build("distilbert", "ner")
    batch = _batch()
    with torch.no_grad():
        expected = model(**batch)
    path = export_onnx(model, tmp_path / "model.onnx", exporter="dynamo")
    assert "could not export" not in capsys.readouterr().err
    _close(OnnxTaskModel(path, model.head_config)(**batch), expected, "distilbert dynamo")


def test_exporting_leaves_the_model_in_eval_mode(tmp_path: Path) -> None:
    """The TorchScript exporter puts its module back in the mode it found it in: a wrapper
    built in training mode would switch the model's dropout on."""
    from occamtune.export import export_onnx

    model = build("distilbert", "ner").eval()
    export_onnx(model, tmp_path / "model.onnx", exporter="torchscript", weights="fp32")
    assert not any(m.training for m in model.modules())
