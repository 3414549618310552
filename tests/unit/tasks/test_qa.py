"""Extractive QA: the SQuAD reader's errors, windows that never lose an answer, span decoding
back to character offsets, SQuAD EM/F1, and train -> evaluate -> predict -> compress -> export ->
serve -> shrink on a tiny random BERT (as test_toy_task does for a task defined in a test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import occamtune
from occamtune.errors import DataError
from occamtune.tasks import get_task
from occamtune.tasks.qa import Question, best_span, encode_questions, read_squad
from occamtune.tasks.squad import normalize_answer, squad_scores
from tests.fixtures.task_data import FILLER, squad_json
from tests.fixtures.task_runs import shrink_two_trials


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_model_dir) -> Path:
    data = tmp_path_factory.mktemp("qa-data")
    for name, n, seed in (("train.json", 40, 1), ("dev.json", 8, 2), ("test.json", 8, 3)):
        (data / name).write_text(json.dumps(squad_json(n, seed)), encoding="utf-8")
    out = tmp_path_factory.mktemp("qa") / "run"
    cfg = occamtune.load_config(None, ["task=qa", f"data.path={data}", f"model.name={tiny_model_dir}",
                                       f"output={out}", "train.epochs=4", "train.batch_size=8",
                                       "train.lr=3e-3", "data.max_length=32", "data.stride=8"])
    occamtune.train(cfg, progress=False)
    return out


def test_reader_names_the_json_path(tmp_path: Path) -> None:
    doc = squad_json(2, 0)
    doc["data"][0]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataError, match=r"data\[0\]\.paragraphs\[1\]\.qas\[0\]\.answers\[0\]: "
                                        "answer text .* is not at answer_start"):
        read_squad(bad)
    bad.write_text('{"data": [}', encoding="utf-8")
    with pytest.raises(DataError, match="line 1: not JSON"):
        read_squad(bad)


def test_windows_never_lose_an_answer(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    items = read_squad_items(squad_json(6, 4, filler=4))
    feats = encode_questions(items, tok, max_length=32, stride=8)
    assert len(feats) > len(items), "the long contexts should need several windows"
    for i, x in enumerate(items):
        text, start = x.answers[0]
        hits = [f for f in feats if f["example"] == i and f["start"] > 0]
        assert hits, f"question {i}: no window holds its answer"
        for f in hits:  # the targets map back to exactly the answer's characters
            s, e = f["offsets"][f["start"]][0], f["offsets"][f["end"]][1]
            assert x.context[s:e] == text and s == start
            assert len(f["input_ids"]) <= 32


def test_a_question_cut_to_fit_the_window_is_named(tiny_model_dir: Path, capsys) -> None:
    """A question of more sub-words than half the window is cut (room for context, as run_qa's
    max_query_length), and a note says which: no word dropped unsaid."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    items = read_squad_items(squad_json(2, 4))
    items[1] = Question(items[1].id, " ".join(["why"] * 40), items[1].context, items[1].answers,
                        2, "data[0].paragraphs[1].qas[0]")
    feats = encode_questions(items, tok, max_length=32, stride=8)
    err = capsys.readouterr().err
    assert "1 question(s) longer than 16 sub-words" in err and "data[0].paragraphs[1].qas[0]" in err
    assert all(len(f["input_ids"]) <= 32 for f in feats)
    assert any(f["example"] == 1 and any(o is not None for o in f["offsets"]) for f in feats)
    encode_questions(items[:1], tok, max_length=32, stride=8)
    assert "note:" not in capsys.readouterr().err  # nothing cut, nothing said


def read_squad_items(doc: dict) -> list[Question]:
    return [Question(qa["id"], qa["question"], p["context"],
                     tuple((a["text"], a["answer_start"]) for a in qa["answers"]), k + 1)
            for k, (p, qa) in enumerate((p, qa) for art in doc["data"] for p in art["paragraphs"]
                                        for qa in p["qas"])]


def test_best_span_keeps_to_the_context_and_max_length() -> None:
    offsets = [None, None, (0, 4), (5, 9), (10, 14), None]
    lp = np.log(np.full((6, 2), 0.01))
    lp[1] = np.log(0.9)  # a question sub-word scores best but is not context
    lp[3, 0], lp[4, 1], lp[2, 1] = np.log(0.5), np.log(0.4), np.log(0.45)  # end before start
    assert best_span(lp, offsets)[1:] == (3, 4)


def test_squad_metric_normalization() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    m = squad_scores([["the cat", "a dog"], ["paris"]], ["Dog", "paris france"])
    assert m["exact_match"] == pytest.approx(50.0)
    assert m["f1"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)


def test_train_evaluate_predict(qa_run: Path) -> None:
    from occamtune.cli import main

    metrics = occamtune.evaluate(qa_run, split="dev")
    assert 0.0 <= metrics["exact_match"] <= metrics["f1"] <= 100.0 and metrics["n"] == 16
    assert np.isfinite(metrics["data_bits"]) and metrics["data_bits"] > 0
    assert (qa_run / "eval_test.md").read_text().startswith("# Evaluation")
    context = f"{FILLER} {FILLER} anna visited berlin on monday . {FILLER}"
    inputs = [{"question": "who visited berlin ?", "context": context},
              json.dumps({"question": "where did anna visit ?", "context": context})]
    for res in occamtune.predict(qa_run, inputs):
        assert context[res["start"]:res["end"]] == res["answer"] and 0 <= res["score"] <= 1
    with pytest.raises(DataError, match="a qa input is"):
        occamtune.predict(qa_run, ["who visited berlin ?"])
    assert main(["evaluate", str(qa_run), "--split", "test"]) == 0


def test_compress_export_and_serve(qa_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from occamtune.serve.app import create_app

    result = occamtune.compress_run(qa_run, "prune(sparsity=0.5), quantize(bits=4)",
                                    tmp_path / "small", progress=False)
    assert result["sizes"]["model_occ"] < result["fp32_bytes"] and "f1" in result["test"]
    small = occamtune.load(tmp_path / "small")
    inputs = [{"question": "who visited paris ?",
               "context": f"{FILLER} john smith visited paris on tuesday . {FILLER}"}]
    expected = small.predict(inputs)
    occamtune.export(tmp_path / "small", tmp_path / "onnx")
    assert "token_type_ids" in get_task("qa").model_inputs
    [onnx] = occamtune.predict(tmp_path / "onnx", inputs)
    assert inputs[0]["context"][onnx["start"]:onnx["end"]] == onnx["answer"]
    client = TestClient(create_app(tmp_path / "small"))
    assert client.get("/health").json()["task"] == "qa"
    got = client.post("/predict", json={"texts": inputs})
    assert got.status_code == 200 and got.json()["predictions"] == expected


def test_shrink(qa_run: Path, tmp_path: Path) -> None:
    assert shrink_two_trials(qa_run, tmp_path / "s", vocab_trim=True)["metric"] == "f1"
