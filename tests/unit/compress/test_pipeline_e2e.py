"""A whole pipeline on the tiny model, through the artifact and `occamtune.models.load_model`."""

from __future__ import annotations

import json

import pytest
import torch

from occamtune.compress import compress, load_artifact, parse_pipeline, save_artifact
from occamtune.compress.prune import prunable
from occamtune.compress.record import record_of
from occamtune.models import load_model
from tests.fixtures.tiny_models import tiny_batches, tiny_context, tiny_task_model


def test_distill_prune_quantize_round_trips(tokenizer, tmp_path) -> None:
    configs = parse_pipeline("distill(layers=1), prune(sparsity=0.5), quantize(bits=4, dynamic=true)")
    model = compress(tiny_task_model(layers=2), configs, tiny_context())
    assert len(model.encoder.encoder.layer) == 1
    zeros = sum(int((m.weight == 0).sum()) for m in prunable(model).values())
    assert zeros >= 0.5 * sum(m.weight.numel() for m in prunable(model).values())
    sizes = save_artifact(model, tokenizer, tmp_path, codec="lzma", meta={"fp32_bytes": 10**6})
    batch = tiny_batches(n=1, seed=3)[0]
    with torch.no_grad():
        ref = model.eval()(**batch)
        torch.testing.assert_close(load_artifact(tmp_path)(**batch), ref, atol=1e-5, rtol=1e-5)
        loaded, _, meta = load_model(tmp_path, runtime=False)
        torch.testing.assert_close(loaded(**batch), ref, atol=1e-5, rtol=1e-5)
        served = load_model(tmp_path)[0]  # int8 kernels, as the pipeline asked: close, not exact
        assert any("quantized" in type(m).__module__ for m in served.modules())
        torch.testing.assert_close(served(**batch), ref, atol=0.05, rtol=0.05)
    assert meta.format == "artifact" and [p["method"] for p in meta.format_info["pipeline"]] == ["distill", "prune", "quantize"]
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["pipeline"] == "distill(layers=1), prune, quantize(bits=4, dynamic=true)"
    assert card["bytes_on_disk"] == sizes["model_occ"]
    assert "compression ratio" in (tmp_path / "card.md").read_text()


def test_structural_pipeline_round_trips(tokenizer, tmp_path) -> None:
    configs = parse_pipeline("structured(heads=0.5, ffn=0.5), share(groups=1), "
                             "lowrank(energy=0.6, min_rank=2), vocab, quantize(bits=6, group_size=8)")
    model = compress(tiny_task_model(layers=2), configs, tiny_context())
    save_artifact(model, tokenizer, tmp_path)
    loaded = load_artifact(tmp_path)
    assert record_of(loaded).structure == record_of(model).structure
    batch = tiny_batches(n=1, seed=4)[0]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), model.eval()(**batch), atol=1e-5, rtol=1e-5)
    again = tmp_path / "again"
    save_artifact(loaded, tokenizer, again)  # codes survive loading: same bytes
    assert (again / "model.occ").read_bytes() == (tmp_path / "model.occ").read_bytes()


def test_artifact_refuses_foreign_files(tmp_path, tokenizer) -> None:
    from occamtune.errors import ModelError

    save_artifact(tiny_task_model(), tokenizer, tmp_path)
    (tmp_path / "model.occ").write_bytes(b"not an artifact")
    with pytest.raises(ModelError, match="bad magic"):
        load_artifact(tmp_path)


def test_classification_distill_quantize_and_lossless_save(tokenizer, tmp_path) -> None:
    from tests.fixtures.tiny_models import tiny_context as ctx_for

    configs = parse_pipeline("distill(layers=1, hidden_weight=0.5), feature(last_k=1), "
                             "quantize(bits=8, embeddings=false)")
    model = compress(tiny_task_model(task="classify"), configs, ctx_for(task="classify"))
    batch = tiny_batches(n=1, task="classify")[0]
    save_artifact(model, tokenizer, tmp_path, codec="none", half_floats=False)
    with torch.no_grad():
        ref = model.eval()(**batch)
        assert ref.shape == (4, 2)
        torch.testing.assert_close(load_artifact(tmp_path)(**batch), ref, atol=1e-6, rtol=1e-6)
        fast = load_artifact(tmp_path, runtime=True)
        assert fast is not None and fast(**batch).shape == (4, 2)


def test_the_compression_record_survives_saving_and_compressing_further(tokenizer, tmp_path) -> None:
    """The search caches intermediate models as artifacts and compresses them further."""
    configs = parse_pipeline("structured(heads=0.5, ffn=0.5, epochs=0), codebook(size=8, "
                             "centroid_bits=4), quantize(bits=8)")
    model = compress(tiny_task_model(), configs, tiny_context(train=False))
    record = record_of(model)
    assert [s.config["method"] for s in record.steps] == ["structured", "codebook", "quantize"]
    assert record.int8_runtime and record.codes and {c["op"] for c in record.structure} == {
        "heads", "ffn", "codebook"}
    assert not any(name.startswith("_occam") for name in vars(model))
    save_artifact(model, tokenizer, tmp_path / "a", codec="none", half_floats=False)
    loaded = load_artifact(tmp_path / "a")
    again = record_of(loaded)
    assert again.log() == record.log() and again.structure == record.structure
    assert again.int8_runtime and again.codes.keys() == record.codes.keys()
    further = compress(loaded, parse_pipeline("quantize(bits=4, dynamic=false)"))
    assert [s["config"]["method"] for s in record_of(further).log()] == [
        "structured", "codebook", "quantize", "quantize"]
    assert not record_of(further).int8_runtime
