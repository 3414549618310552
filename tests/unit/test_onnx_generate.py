"""The ONNX export of a text generator (`occamtune.onnx_generate`): a decoding step with a
key/value cache that transformers' `generate` drives in ONNX Runtime. On tiny random decoders
of each family it writes the tokens of the torch model (greedy and beam search, left-padded
batches) and the same teacher-forced costs; the int8 and 4-bit files are smaller; a model
whose layers share one module is refused with the reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from occamtune.compress import (
    QuantizeConfig,
    ShareConfig,
    VocabTrimConfig,
    compress,
    save_artifact,
)
from occamtune.errors import ConfigError
from occamtune.export import export_run
from occamtune.models import load_model, save_model
from occamtune.models.generation import generate_texts, target_nll
from tests.unit.tasks.test_generate import _context, _setup

FAMILIES = ("llama-tied", "llama", "gpt2", "qwen2", "gemma3_text")


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory) -> dict[str, Any]:
    return _export(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def tied(tmp_path_factory) -> dict[str, Any]:
    """The tied Llama (SmolLM2's layout): one family is enough for the weight formats and the
    compressed models."""
    return _export("llama-tied", tmp_path_factory)


def _export(name: str, tmp_path_factory: Any) -> dict[str, Any]:
    setup = _setup(name, tmp_path_factory)
    root = setup["folder"]
    save_model(setup["model"], setup["tok"], root / "run")
    export_run(root / "run", root / "onnx", weights="fp32", notes=False)
    onnx, _, meta = load_model(root / "onnx")
    return {**setup, "onnx": onnx, "root": root, "meta": meta}


def _texts(model: Any, feats: list[dict], beams: int = 1) -> list[str]:
    before = model.head_config.extra["num_beams"]
    model.head_config.extra["num_beams"] = beams
    try:
        # a batch of 3: prompts of different lengths, left-padded
        return generate_texts(model, feats, batch_size=3 * beams)
    finally:
        model.head_config.extra["num_beams"] = before


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


def test_a_tied_output_layer_is_written_once(exported: dict[str, Any]) -> None:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(exported["root"] / "onnx" / "model.onnx")).graph
    table = exported["model"].encoder.get_input_embeddings().weight.detach().numpy()
    copies = [i.name for i in graph.initializer
              if list(i.dims) in (list(table.shape), list(table.shape)[::-1])
              and abs(numpy_helper.to_array(i)).sum() == pytest.approx(abs(table).sum(), rel=1e-6)]
    assert len(copies) == 1, copies  # the table alone, also where the head reads it


def test_the_step_reads_its_cache_without_copying_it(exported: dict[str, Any]) -> None:
    """The past keys and values go into attention as given: no `Concat` of one tensor (a copy
    of the whole cache at every step)."""
    assert copies(exported["root"] / "onnx" / "model.onnx") == []


def copies(path: Path) -> list[str]:
    """The graph inputs of an ONNX file that a `Concat` joins to nothing but empty tensors: each
    copied whole on every run (a cache's `update` onto its empty start, traced, is one)."""
    import math

    import onnx

    graph = onnx.load(str(path)).graph
    empty = {i.name for i in graph.initializer if math.prod(i.dims) == 0}
    empty |= {n.output[0] for n in graph.node if n.op_type == "Constant"
              and any(a.name == "value" and math.prod(a.t.dims) == 0 for a in n.attribute)}
    inputs = {i.name for i in graph.input}
    joined = [[i for i in n.input if i not in empty] for n in graph.node if n.op_type == "Concat"]
    return [j[0] for j in joined if len(j) == 1 and j[0] in inputs]


def test_the_step_hands_back_the_whole_cache_and_older_exports_still_load(
        tied: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The step returns every cached position's keys and values, which the loader keeps as the
    cache (no second copy of it per token); an export of the earlier kind, which returned the
    new entries alone, still writes the same tokens."""
    from occamtune import onnx_cache

    root, step = tied["root"], tied["onnx"]
    assert step.present == "all"
    past = [torch.zeros(1, h, 2, d) for h, d in step.shapes for _ in range(2)]
    _, cached = step.step(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 5, dtype=torch.long),
                          torch.arange(2, 5)[None], torch.tensor([[2]]), past)
    assert [x.shape[2] for x in cached] == [5] * len(past)  # 2 cached + 3 new
    _, first = step.step(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long),
                         torch.arange(3)[None], torch.tensor([[2]]), None)
    assert [x.shape[2] for x in first] == [3] * len(past)  # not the stand-in position
    monkeypatch.setattr(onnx_cache, "PRESENT", "new")
    export_run(root / "run", root / "new-only", weights="fp32", notes=False)
    older = load_model(root / "new-only")[0]
    assert older.present == "new"
    feats = tied["feats"][:6]
    for beams in (1, 2):
        assert _texts(older, feats, beams) == _texts(step, feats, beams)


def test_grouped_heads_read_their_cache_without_repeating_it(exported: dict[str, Any]) -> None:
    """Query heads that share a key/value head (every family here but GPT-2) multiply by the
    cached keys and values as they are: no `Expand` repeats the cache per query head."""
    assert repeats(exported["root"] / "onnx" / "model.onnx") == []


def repeats(path: Path) -> list[str]:
    """The cache inputs (`past.*`) of an ONNX file that reach an `Expand` through nothing but
    ops that move data (joins, reshapes): each copied whole into a larger tensor on every run."""
    import onnx

    graph = onnx.load(str(path)).graph
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    moves = {"Concat", "Unsqueeze", "Reshape", "Identity", "Transpose"}

    def reaches(name: str) -> bool:
        return any(n.op_type == "Expand" or (n.op_type in moves and reaches(n.output[0]))
                   for n in readers.get(name, []))

    return [i.name for i in graph.input if i.name.startswith("past.") and reaches(i.name)]


def test_the_step_does_not_spin_between_steps(exported: dict[str, Any]) -> None:
    """ONNX Runtime's threads wait for the next token's run without spinning: between runs the
    cores do `generate`'s own work (`onnx_cache.SPINNING`)."""
    from occamtune.onnx_cache import SPINNING

    options = exported["onnx"].session.get_session_options()
    assert options.get_session_config_entry(SPINNING) == "0"


def test_the_cache_has_one_slot_per_layer(exported: dict[str, Any]) -> None:
    info = exported["meta"].format_info
    assert info["generator"] and info["layers"] == 2 and len(info["cache_shapes"]) == 2
    names = [i.name for i in exported["onnx"].session.get_inputs()]
    assert names[:4] == ["input_ids", "attention_mask", "position_ids", "logits_at"]
    assert names[4:] == ["past.0.key", "past.0.value", "past.1.key", "past.1.value"]


def test_int8_and_a_4_bit_artifact_export_smaller(tied: dict[str, Any]) -> None:
    root, model = tied["root"], tied["model"]
    fp32 = (root / "onnx" / "model.onnx").stat().st_size
    export_run(root / "run", root / "int8", weights="int8", notes=False)
    assert (root / "int8" / "model.onnx").stat().st_size < fp32  # graph text dominates a tiny file
    int8, _, _ = load_model(root / "int8")
    feats = tied["feats"][:4]
    # int8 weights, one scale per output channel: close to the model's costs, not exact
    assert target_nll(int8, feats, 4) == pytest.approx(target_nll(model, feats, 4), rel=0.02)

    small = compress(model, [QuantizeConfig(bits=4, group_size=16)])
    save_artifact(small, tied["tok"], root / "q4")
    info = export_run(root / "q4", root / "q4-onnx", weights="int4", notes=False)
    assert info["nbits"]["exact"] > 0 and info["nbits"]["rounded"] == 0  # its own codes
    assert _float_tables(root / "q4-onnx" / "model.onnx", small) == []  # the tied head too
    assert info["nbits"]["shared"] == 1  # the lookup reads the tied head's codes: stored once
    assert len(_code_tables(root / "q4-onnx" / "model.onnx", small)) == 1
    q4, _, _ = load_model(root / "q4-onnx")
    assert _texts(q4, feats) == _texts(small, feats)
    assert target_nll(q4, feats, 4) == pytest.approx(target_nll(small, feats, 4), rel=1e-3)


def test_shared_layers_are_refused_with_the_reason(tied: dict[str, Any]) -> None:
    root = tied["root"]
    shared = compress(copy.deepcopy(tied["model"]), [ShareConfig(groups=1)],
                      _context(tied))
    save_artifact(shared, tied["tok"], root / "shared")
    with pytest.raises(ConfigError, match="cross-layer sharing"):
        export_run(root / "shared", root / "shared-onnx", weights="fp32", notes=False)
    assert not list(root.glob("*shared-onnx*/*.onnx"))  # nothing half-written


def test_a_trimmed_vocabulary_exports_and_writes_only_its_tokens(tied: dict[str, Any]) -> None:
    root = tied["root"]
    small = compress(copy.deepcopy(tied["model"]), [VocabTrimConfig()], _context(tied))
    save_artifact(small, tied["tok"], root / "trim")
    export_run(root / "trim", root / "trim-onnx", weights="fp32", notes=False)
    onnx, _, _ = load_model(root / "trim-onnx")
    feats = tied["feats"][:4]
    assert _texts(onnx, feats) == _texts(small, feats)
    assert target_nll(onnx, feats, 4) == pytest.approx(target_nll(small, feats, 4), rel=1e-4)


def _code_tables(path: Path, model: Any) -> list[str]:
    """The uint8 constants of an ONNX file with a row per word of the vocabulary: the word
    embeddings' 4-bit codes, each copy of them."""
    import onnx

    rows = model.encoder.get_input_embeddings().weight.shape[0]
    return [i.name for i in onnx.load(str(path)).graph.initializer
            if i.data_type == onnx.TensorProto.UINT8 and i.dims[0] == rows]


def _float_tables(path: Path, model: Any) -> list[str]:
    """The float32 constants of an ONNX file as large as the model's word-embedding table: a
    tied output layer left in float beside the table's codes."""
    import math

    import onnx

    size = model.encoder.get_input_embeddings().weight.numel()
    return [i.name for i in onnx.load(str(path)).graph.initializer
            if i.data_type == onnx.TensorProto.FLOAT and math.prod(i.dims) >= size]
