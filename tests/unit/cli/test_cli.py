"""Every CLI verb on a tiny random model; bad input gives exit code 2 and one clear message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from occamtune.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    code = main(["train", "--task", "ner", "--data", str(fixtures / "conll_tiny"), "--model",
                 str(tiny_model_dir), "--output", str(out), "--epochs", "2", "--quiet",
                 "train.batch_size=4", "train.lr=3e-3", "data.max_length=32", "data.stride=4"])
    assert code == 0
    return out


def test_train_writes_a_loadable_run(run_dir: Path) -> None:
    meta = json.loads((run_dir / "occamtune.json").read_text())
    assert meta["head"]["task"] == "ner" and meta["head"]["labels"][0] == "O"
    assert meta["head"]["shape_features"] is True  # the tiny tokenizer lower-cases


def test_evaluate_split_and_file(run_dir: Path, capsys, conll_tiny) -> None:
    assert main(["evaluate", str(run_dir), "--split", "dev"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out)
    assert 0 <= out["f1"] <= 100
    # the person sees the per-type table and where the reports went
    assert "## Entities (strict spans)" in printed.err and "| type | precision" in printed.err
    assert f"written: {run_dir / 'eval_dev.json'}" in printed.err
    assert (run_dir / "eval_dev.md").read_text().startswith("# Evaluation")
    assert main(["evaluate", str(run_dir), "--file", str(conll_tiny / "test.txt")]) == 0


def test_decoding_settings_are_refused_for_a_tagger(run_dir: Path, capsys) -> None:
    assert main(["predict", str(run_dir), "Paris .", "--generate.num_beams", "2"]) == 2
    assert "decoding settings (num_beams) are for generated text" in capsys.readouterr().err


def test_predict_text_gives_spans_with_offsets(run_dir: Path, capsys) -> None:
    text = "John Smith visited Paris on Monday ."
    assert main(["predict", str(run_dir), text]) == 0
    rec = json.loads(capsys.readouterr().out.splitlines()[0])
    assert [w["word"] for w in rec["words"]] == text.split()
    for w in rec["words"]:
        assert text[w["start"]:w["end"]] == w["word"]
    for e in rec["entities"]:
        assert text[e["start"]:e["end"]] == e["text"]


def test_predict_long_text_drops_no_word(run_dir: Path, capsys) -> None:
    text = " ".join(["Paris", "and", "London"] * 60)  # far beyond max_length 32
    assert main(["predict", str(run_dir), text]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["words"]) == 180 and all(w["tag"] for w in rec["words"])


def test_predict_conll_in_conll_out(run_dir: Path, tmp_path: Path, conll_tiny) -> None:
    out = tmp_path / "pred.conll"
    assert main(["predict", str(run_dir), "--conll", str(conll_tiny / "test.txt"), "--output", str(out)]) == 0
    lines = [ln for ln in out.read_text().splitlines() if ln]
    src = [ln for ln in (conll_tiny / "test.txt").read_text().splitlines() if ln and not ln.startswith("-DOC")]
    assert len(lines) == len(src)
    assert all(len(ln.split()) == 3 for ln in lines)  # word gold predicted


def test_continue_training_on_new_data(run_dir: Path, tmp_path: Path, conll_tiny) -> None:
    out = tmp_path / "more"
    assert main(["train", "--task", "ner", "--data", str(conll_tiny), "--model", str(run_dir),
                 "--output", str(out), "--epochs", "1", "--quiet", "train.batch_size=4",
                 "data.max_length=32", "data.stride=4"]) == 0
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("content, needle", [
    ("EU NNP B-ORG\nrejects VBZ\n", "line 2"),          # wrong column count
    (b"caf\xe9 NN O\n", "not UTF-8"),                     # latin-1 bytes
    ("", "no sentences"),                                 # empty
])
def test_bad_training_file_exit_2(tmp_path: Path, tiny_model_dir, capsys, content, needle) -> None:
    f = tmp_path / "train.txt"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = main(["train", "--task", "ner", "--data", str(f), "--model", str(tiny_model_dir),
                 "--output", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and str(f) in err and "Traceback" not in err


def test_unknown_label_in_test_names_file_and_line(tmp_path: Path, tiny_model_dir, capsys, conll_tiny) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "train.txt").write_text((conll_tiny / "train.txt").read_text())
    (data / "test.txt").write_text("Paris NNP B-NP B-CITY\n")
    code = main(["train", "--task", "ner", "--data", str(data), "--model", str(tiny_model_dir),
                 "--output", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "test.txt, line 1" in err and "B-CITY" in err


def test_missing_path_and_unknown_key(tmp_path: Path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "train.lrr=1", "--output", str(tmp_path / "o")]) == 2
    assert "train.lr" in capsys.readouterr().err


def test_slow_tokenizer_is_refused_for_ner(monkeypatch) -> None:
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from occamtune.errors import ModelError
    from occamtune.models import load_tokenizer

    slow = SimpleNamespace(is_fast=False, pad_token="[PAD]")  # a Python-only (slow) tokenizer
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: slow)
    with pytest.raises(ModelError, match="fast tokenizer"):
        load_tokenizer("some/model", "ner")
    assert load_tokenizer("some/model", "classify") is slow  # classification does not need one


TS = ["--exporter", "torchscript"]  # the legacy tracer: seconds, where dynamo takes a minute


@pytest.mark.parametrize("flags", [["--fp32", *TS], TS,
                                   pytest.param(["--fp32"], marks=pytest.mark.slow),
                                   pytest.param([], marks=pytest.mark.slow)])
def test_export_onnx_runs_like_the_run(run_dir: Path, tmp_path: Path, capsys, flags) -> None:
    from occamtune import inference
    from occamtune.models import load_model
    from occamtune.train.run import load_run_data

    out = tmp_path / "onnx"
    assert main(["export", str(run_dir), "--output", str(out), *flags]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["int8"] is ("--fp32" not in flags)  # stdout: the JSON alone
    assert "Warning" not in printed.err  # nothing a user cannot act on
    assert not re.search(r"^[WE]\d{4} ", printed.err, re.MULTILINE)  # nor torch's own log lines
    fp32 = "--fp32" in flags
    onnx, tok, _ = load_model(out)
    torch_model = load_model(run_dir)[0]
    _, splits = load_run_data(run_dir, tok, torch_model.labels)
    feats = splits["test"].features
    a, b = inference.run_model(onnx, feats), inference.run_model(torch_model, feats)
    close = [abs(x - y).max() < (1e-4 if fp32 else 0.5) for x, y in zip(a, b)]
    assert all(close)  # fp32: the same numbers; int8: near them
    assert main(["evaluate", str(out), "--split", "test"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["f1"] <= 100
    assert main(["predict", str(out), "John Smith visited Paris ."]) == 0
    assert len(json.loads(capsys.readouterr().out)["words"]) == 5


def test_export_refuses_to_overwrite_and_to_train_on(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "onnx"
    assert main(["export", str(run_dir), "--output", str(out), *TS]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--output", str(out), *TS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["compress", str(out), "--pipeline", "quantize(bits=8)", "--output",
                 str(tmp_path / "c")]) == 2
    assert "ONNX export" in capsys.readouterr().err


def test_export_a_compressed_artifact(run_dir: Path, tmp_path: Path, capsys) -> None:
    small, onnx = tmp_path / "small", tmp_path / "onnx"
    assert main(["compress", str(run_dir), "--pipeline", "vocab(rank=4), codebook(size=8), quantize(bits=4)",
                 "--output", str(small), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(small), "--output", str(onnx), "--fp32", *TS]) == 0
    capsys.readouterr()
    for folder in (small, onnx):  # the export answers as the artifact does
        assert main(["evaluate", str(folder), "--split", "test"]) == 0
    f1 = [json.loads(line)["f1"] for line in capsys.readouterr().out.splitlines()]
    assert f1[0] == pytest.approx(f1[1], abs=1e-6)


def test_an_export_compressed_with_zstd_is_smaller_and_answers_the_same(
        run_dir: Path, tmp_path: Path, capsys) -> None:
    from occamtune.api import export
    from occamtune.errors import ConfigError

    small = tmp_path / "small"
    assert main(["compress", str(run_dir), "--pipeline", "quantize(bits=4, group_size=16)",
                 "--output", str(small), "--quiet", "--no-eval"]) == 0
    capsys.readouterr()
    plain, zst = tmp_path / "plain", tmp_path / "zst"
    for out, codec in ((plain, "none"), (zst, "zstd")):
        assert main(["export", str(small), "--output", str(out), "--weights", "int4", *TS,
                     "--codec", codec]) == 0
    info = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["codec"] for i in info] == ["none", "zstd"]
    assert not (zst / "model.onnx").exists()  # never written out uncompressed
    assert info[1]["onnx"] == "model.onnx.zst"
    assert info[1]["bytes"] == (zst / "model.onnx.zst").stat().st_size
    assert info[1]["bytes"] < 0.95 * info[0]["bytes"]
    for folder in (plain, zst):  # loaded from the compressed file: the same graph
        assert main(["evaluate", str(folder), "--split", "test"]) == 0
    f1 = [json.loads(line)["f1"] for line in capsys.readouterr().out.splitlines()]
    assert f1[0] == f1[1]
    with pytest.raises(ConfigError, match="codec must be one of none, zstd"):
        export(small, tmp_path / "gz", codec="gzip")
    assert not (tmp_path / "gz").exists()
    assert main(["export", str(run_dir), "--output", str(tmp_path / "g.gguf"), "--gguf", "q4_1",
                 "--codec", "zstd"]) == 2
    assert "--codec" in capsys.readouterr().err


def test_outputs_have_one_mode_and_no_local_paths(run_dir: Path, tmp_path: Path, capsys) -> None:
    small, onnx = tmp_path / "small", tmp_path / "onnx"
    assert main(["compress", str(run_dir), "--pipeline", "quantize(bits=8)", "--output", str(small),
                 "--quiet", "--no-eval"]) == 0
    assert main(["export", str(small), "--output", str(onnx)]) == 0
    capsys.readouterr()
    modes = {f.name: f.stat().st_mode & 0o777 for f in run_dir.iterdir() if f.is_file()}
    assert modes["model.safetensors"] == modes["config.json"], modes
    for folder in (run_dir, small, onnx):
        for name in ("occamtune.json", "card.json", "card.md"):
            if (folder / name).is_file():
                text = (folder / name).read_text()
                assert str(tmp_path.parent) not in text, folder / name  # the session's temp root


def test_a_compress_killed_in_its_final_steps_runs_again(run_dir: Path, tmp_path: Path, capsys,
                                                        monkeypatch) -> None:
    from occamtune.compress import run as compress_module
    from occamtune.models import load_model

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "small"
    args = ["compress", str(run_dir), "--pipeline", "quantize(bits=8)", "--output", str(out), "--quiet"]
    with monkeypatch.context() as m:
        m.setattr(compress_module, "evaluate_split", killed)  # after the artifact's files
        assert main(args) == 130
    assert not out.exists() or not any(out.iterdir())
    assert main(args) == 0  # the same command, without --overwrite
    load_model(out)
    assert not list(tmp_path.glob(".small*"))
