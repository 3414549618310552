"""The ONNX export of an encoder-decoder generator (`occamtune.onnx_seq2seq`): the encoder's
graph, the cross-attention's keys and values, and a decoding step with the decoder's key/value
cache, driven by transformers' `generate` in ONNX Runtime. On tiny random T5, BART and warm-started BERT2BERT models it writes
the tokens of the torch model (greedy and beam search, right-padded sources), gives the same
teacher-forced costs and streams the same text; the int8 file is smaller and a 4-bit artifact's
4-bit export computes the artifact's own weights."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from occamtune.compress import QuantizeConfig, compress, save_artifact
from occamtune.export import export_onnx, export_run
from occamtune.models import load_model, save_model
from occamtune.models.generation import generate_texts, stream_text, target_nll
from occamtune.tasks import get_task
from tests.fixtures.tiny_models import tiny_finetune
from tests.unit.tasks.test_generate_seq2seq import FAMILIES, seq2seq_setup
from tests.unit.test_onnx_generate import (  # a batch of 3 (padded), beams as asked
    _float_tables,
    _texts,
    copies,
)


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory, tiny_model_dir: Path) -> dict[str, Any]:
    setup = seq2seq_setup(request.param, tmp_path_factory, tiny_model_dir)
    # trained a little: a random model's first token is often its end, and an empty text
    # compares nothing
    tiny_finetune(setup["batches"])(setup["model"], epochs=30, lr=3e-3,
                                    loss_fn=get_task("generate").train_loss)
    setup["model"].eval()
    root = tmp_path_factory.mktemp(f"onnx-{request.param}")
    save_model(setup["model"], setup["tok"], root / "run")
    info = export_run(root / "run", root / "onnx", weights="fp32", notes=False)
    onnx, _, meta = load_model(root / "onnx")
    return {**setup, "onnx": onnx, "root": root, "meta": meta, "info": info}


@pytest.mark.parametrize("beams", [1, 2])
def test_the_export_writes_the_tokens_of_the_model(exported: dict[str, Any], beams: int) -> None:
    feats = exported["feats"][:6]
    assert len({f["prompt"] for f in feats}) > 1  # the batches are padded
    expected = _texts(exported["model"], feats, beams)
    assert any(expected)
    assert _texts(exported["onnx"], feats, beams) == expected


def test_the_export_gives_the_teacher_forced_costs(exported: dict[str, Any]) -> None:
    feats = exported["feats"][:5]
    expected = target_nll(exported["model"], feats, batch_size=4)
    got = target_nll(exported["onnx"], feats, batch_size=4)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_the_export_streams_the_text_it_writes_whole(exported: dict[str, Any]) -> None:
    feat = exported["feats"][0]
    whole = generate_texts(exported["onnx"], [feat], batch_size=1)[0]
    assert "".join(stream_text(exported["onnx"], feat)).strip() == whole


def test_three_graphs_beside_one_another(exported: dict[str, Any]) -> None:
    import onnx

    info, root = exported["meta"].format_info, exported["root"] / "onnx"
    assert info["seq2seq"] and info["encoder_onnx"] == "model.encoder.onnx"
    assert info["cross_onnx"] == "model.cross.onnx"
    assert info["layers"] == 2 and len(info["cache_shapes"]) == len(info["cross_shapes"]) == 2
    onnx_model = exported["onnx"]
    names = [i.name for i in onnx_model.session.get_inputs()]
    assert names[0] == "decoder_input_ids" and "attention_mask" in names
    assert names[-8:] == ["past.0.key", "past.0.value", "past.1.key", "past.1.value",
                          "cross.0.key", "cross.0.value", "cross.1.key", "cross.1.value"]
    assert [i.name for i in onnx_model.encoder_session.get_inputs()] == ["input_ids",
                                                                         "attention_mask"]
    # the cross graph holds the cross-attention's key and value projections and nothing else
    # of the decoder: two weight matrices per layer
    graph = onnx.load(str(root / "model.cross.onnx")).graph
    matrices = [i for i in graph.initializer if len(i.dims) == 2]
    assert len(matrices) == 2 * info["layers"]
    files = ("model.onnx", "model.encoder.onnx", "model.cross.onnx")
    assert exported["info"]["bytes"] == sum((root / f).stat().st_size for f in files)
    # the step reads both caches as given: no copy of the source's keys and values per token
    assert copies(root / "model.onnx") == []


def test_three_graphs_compressed_with_zstd_write_the_same_tokens(exported: dict[str, Any]) -> None:
    root = exported["root"]
    info = export_run(root / "run", root / "zst", weights="fp32", notes=False, codec="zstd")
    files = ("model.onnx.zst", "model.encoder.onnx.zst", "model.cross.onnx.zst")
    assert [info[k] for k in ("onnx", "encoder_onnx", "cross_onnx")] == list(files)
    assert info["bytes"] == sum((root / "zst" / f).stat().st_size for f in files)
    assert not list((root / "zst").glob("*.onnx"))  # none written out uncompressed
    zst = load_model(root / "zst")[0]
    feats = exported["feats"][:6]
    assert _texts(zst, feats) == _texts(exported["onnx"], feats)


def test_an_older_step_of_new_entries_only_still_writes_the_tokens(
        exported: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps return the whole self-attention cache now (`onnx_cache.PRESENT`); an export that
    returned the new tokens' entries alone loads and writes the same tokens."""
    from occamtune import onnx_cache

    assert exported["onnx"].present == "all"
    root = exported["root"]
    monkeypatch.setattr(onnx_cache, "PRESENT", "new")
    export_run(root / "run", root / "new-only", weights="fp32", notes=False)
    older = load_model(root / "new-only")[0]
    assert older.present == "new"
    feats = exported["feats"][:6]
    for beams in (1, 2):
        assert _texts(older, feats, beams) == _texts(exported["onnx"], feats, beams)


def test_the_three_sessions_do_not_spin_between_steps(exported: dict[str, Any]) -> None:
    from occamtune.onnx_cache import SPINNING

    onnx = exported["onnx"]
    for session in (onnx.session, onnx.encoder_session, onnx.cross_session):
        assert session.get_session_options().get_session_config_entry(SPINNING) == "0"


def test_int8_and_a_4_bit_artifact_export_smaller(exported: dict[str, Any]) -> None:
    root, model = exported["root"], exported["model"]
    files = ("model.onnx", "model.encoder.onnx", "model.cross.onnx")
    fp32 = {f: (root / "onnx" / f).stat().st_size for f in files}
    export_run(root / "run", root / "int8", weights="int8", notes=False)
    assert all((root / "int8" / f).stat().st_size < fp32[f] for f in files)
    import onnx

    for f in files:  # both graphs multiply on ONNX Runtime's int8 kernels
        ops = {n.op_type for n in onnx.load(str(root / "int8" / f)).graph.node}
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, f
    int8, _, _ = load_model(root / "int8")
    feats = exported["feats"][:4]
    # int8 weights and activations, on models 32 wide: near the model's costs, not exact
    assert target_nll(int8, feats, 4) == pytest.approx(target_nll(model, feats, 4), rel=0.25)

    small = compress(copy.deepcopy(model), [QuantizeConfig(bits=4, group_size=16)])
    save_artifact(small, exported["tok"], root / "q4")
    info = export_run(root / "q4", root / "q4-onnx", weights="int4", notes=False)
    assert info["nbits"]["exact"] > 0 and info["nbits"]["rounded"] == 0  # its own codes
    assert _float_tables(root / "q4-onnx" / "model.onnx", small) == []  # the tied head too
    q4, _, _ = load_model(root / "q4-onnx")
    assert _texts(q4, feats) == _texts(small, feats)
    assert target_nll(q4, feats, 4) == pytest.approx(target_nll(small, feats, 4), rel=1e-3)


def test_exporting_leaves_the_model_in_eval_mode(exported: dict[str, Any],
                                                  tmp_path: Path) -> None:
    """The exporter puts each module back in the mode it found it in: a wrapper built in
    training mode would switch the model's dropout on."""
    model = copy.deepcopy(exported["model"]).eval()
    export_onnx(model, tmp_path / "model.onnx", weights="fp32")
    assert not any(m.training for m in model.modules())


def test_a_pruned_distilled_and_trimmed_artifact_exports_its_own_model(
        exported: dict[str, Any], tmp_path: Path) -> None:
    """The layout methods' artifact (both halves' heads and neurons cut, a decoder layer
    dropped, the vocabulary trimmed with its output layer) exports as three graphs that write
    its tokens and give its costs."""
    from occamtune.compress import (
        DistillConfig,
        StructuredPruneConfig,
        VocabTrimConfig,
        load_artifact,
    )
    from tests.fixtures.tiny_models import batches_context

    ctx = batches_context(exported["batches"], exported["tok"], max_length=64)
    small = compress(copy.deepcopy(exported["model"]),
                     [DistillConfig(layers=1), StructuredPruneConfig(heads=0.5, ffn=0.5, epochs=0),
                      VocabTrimConfig(rank=4)], ctx)
    save_artifact(small, exported["tok"], tmp_path / "small", half_floats=False)
    info = export_run(tmp_path / "small", tmp_path / "onnx", weights="fp32", notes=False)
    onnx, _, meta = load_model(tmp_path / "onnx")
    assert meta.format_info["layers"] == 1
    artifact = load_artifact(tmp_path / "small").eval()
    feats = exported["feats"][:6]
    assert _texts(onnx, feats) == _texts(artifact, feats)
    assert target_nll(onnx, feats, 4) == pytest.approx(target_nll(artifact, feats, 4), rel=1e-4)
    assert info["bytes"] < exported["info"]["bytes"]
