"""`export --gguf`: a trained text generator as one GGUF file that transformers' GGUF reader loads
back to the same next-token scores and the same tokenizer, and that llama.cpp runs to the same
scores where `llama-cpp-python` is installed (it is not a dependency: it compiles llama.cpp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from occamtune.errors import ConfigError, ModelError
from tests.fixtures.tiny_decoders import tiny_llama_dir
from tests.unit.tasks.test_generate import write_pairs

TEXTS = ["the cat sat on a mat. a dog ran far.", "Peter Blackburn went to Brussels ."]


@pytest.fixture(scope="module", params=["tied", "untied"])
def gen_run(request, tmp_path_factory) -> Path:
    import occamtune
    from occamtune.config import load_config

    root = tmp_path_factory.mktemp(f"gguf-{request.param}")
    model = tiny_llama_dir(root / "llama", tied=request.param == "tied")
    (root / "data").mkdir()
    for split, n, seed in (("train", 8, 0), ("dev", 4, 1), ("test", 4, 2)):
        write_pairs(root / "data" / f"{split}.jsonl", n, seed)
    cfg = load_config(None, ["task=generate", f"data.path={root / 'data'}", f"model.name={model}",
                             f"output={root / 'run'}", "train.epochs=1", "train.batch_size=4",
                             "data.max_length=96", "generate.max_new_tokens=4"])
    occamtune.train(cfg, progress=False)
    return root / "run"


def _scores(run: Path, gguf_file: Path) -> tuple[torch.Tensor, torch.Tensor, list, list]:
    """The run's next-token logits and those of the GGUF file as transformers reads it, on the
    same ids; and both tokenizers' ids of TEXTS."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from occamtune.models import load_model
    from occamtune.models.generation import causal_lm

    model, tok, _ = load_model(run)
    ids = torch.tensor([tok(TEXTS[0])["input_ids"]])
    with torch.no_grad():
        ours = causal_lm(model)(input_ids=ids).logits
        back = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        theirs = back.eval()(input_ids=ids).logits
    tok_back = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    return ours, theirs, [tok(t)["input_ids"] for t in TEXTS], [tok_back(t)["input_ids"] for t in TEXTS]


def test_the_gguf_file_reads_back_to_the_same_scores_and_tokens(gen_run: Path, tmp_path: Path) -> None:
    from occamtune.api import export_gguf

    info = export_gguf(gen_run, tmp_path / "f32" / "model.gguf", qtype="f32")
    ours, theirs, ids, ids_back = _scores(gen_run, tmp_path / "f32" / "model.gguf")
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    assert ids == ids_back  # the same byte-level BPE, rebuilt from the file's tokens and merges
    assert set(info["tensor_types"]) == {"F32"}
    assert info["tied"] == ("untied" not in gen_run.parent.name)
    assert info["fp32_bytes"] == (gen_run / "model.safetensors").stat().st_size

    small = export_gguf(gen_run, tmp_path / "q8" / "model.gguf", qtype="q8_0")
    assert small["bytes"] < info["bytes"] / 2
    _, q8, _, _ = _scores(gen_run, tmp_path / "q8" / "model.gguf")
    assert (q8 - ours).abs().max() < 0.05 * ours.abs().max()  # 8-bit blocks: close, not exact
    assert (q8.argmax(-1) == ours.argmax(-1)).float().mean() >= 0.9


def test_a_4_bit_file_keeps_norms_float_and_embeddings_8_bit(gen_run: Path, tmp_path: Path) -> None:
    import gguf

    from occamtune.api import export_gguf

    path = tmp_path / "model.gguf"
    export_gguf(gen_run, path, qtype="q4_1")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    assert types["token_embd.weight"] == "Q8_0" and types["output_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "Q4_1" and types["blk.1.ffn_down.weight"] == "Q4_1"
    assert ("output.weight" in types) == ("untied" in gen_run.parent.name)
    with pytest.raises(ConfigError, match="--overwrite"):
        export_gguf(gen_run, path, qtype="q4_1")
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left beside it


def test_what_gguf_cannot_hold_is_refused_with_the_reason(gen_run: Path, tmp_path: Path,
                                                         tiny_run: Path) -> None:
    from occamtune.api import compress_run, export_gguf

    with pytest.raises(ConfigError, match="path ending in .gguf"):
        export_gguf(gen_run, tmp_path / "folder", qtype="q8_0")
    with pytest.raises(ConfigError, match="GGUF holds a text generator"):
        export_gguf(tiny_run, tmp_path / "ner.gguf")
    trimmed = tmp_path / "trimmed"
    compress_run(str(gen_run), "vocab", str(trimmed))
    with pytest.raises(ModelError, match="trimmed vocabulary"):
        export_gguf(trimmed, tmp_path / "trimmed.gguf")
    pruned = tmp_path / "pruned"
    compress_run(str(gen_run), "structured(heads=0.5, ffn=0.5, epochs=0)", str(pruned))
    with pytest.raises(ModelError, match="pruned"):
        export_gguf(pruned, tmp_path / "pruned.gguf")
    assert not list(tmp_path.glob("*.gguf"))


def test_the_cli_writes_it_and_refuses_onnx_options(gen_run: Path, tmp_path: Path, capsys) -> None:
    from occamtune.cli import main

    argv = ["export", str(gen_run), "--output", str(tmp_path / "m.gguf"), "--gguf", "q4_0"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["tensor_types"]["Q4_0"] > 0
    assert main([*argv, "--weights", "int8", "--overwrite"]) != 0
    assert "--weights set(s) the ONNX export" in capsys.readouterr().err


def test_llama_cpp_runs_the_file_to_the_same_logits(gen_run: Path, tmp_path: Path) -> None:
    """The file in llama.cpp itself, where `llama-cpp-python` is installed (it compiles llama.cpp,
    so it is not a dependency of the project): the same next-token logits as the run's model."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from occamtune.api import export_gguf
    from occamtune.models import load_model
    from occamtune.models.generation import causal_lm

    path = tmp_path / "model.gguf"
    export_gguf(gen_run, path, qtype="f32")
    model, tok, _ = load_model(gen_run)
    ids = tok(TEXTS[0])["input_ids"]
    with torch.no_grad():
        ours = causal_lm(model)(input_ids=torch.tensor([ids])).logits[0]
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, logits_all=True, n_threads=1,
                          verbose=False)
    llm.eval(ids)
    theirs = torch.tensor(llm.scores[: len(ids)])
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-3), (theirs - ours).abs().max()
