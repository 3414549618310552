"""Relation extraction: reader errors, the official SemEval score, the entity markers as special
tokens (kept by vocabulary trimming), and train -> evaluate -> predict -> compress -> export ->
serve -> shrink on a tiny random BERT (as test_toy_task does for a task defined in a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import occamtune
from occamtune.errors import DataError
from occamtune.tasks.relation import MARKERS, mark, read_relations, relation_metrics
from tests.fixtures.task_data import write_relations
from tests.fixtures.task_runs import shrink_two_trials


@pytest.fixture(scope="module")
def relation_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("relation-data")
    for name, n, seed in (("train.tsv", 60, 1), ("dev.tsv", 18, 2), ("test.tsv", 18, 3)):
        write_relations(data, name, n, seed)
    return data


def train_tiny(data: Path, out: Path, model_dir: Path, *extra: str) -> Path:
    cfg = occamtune.load_config(None, ["task=relation", f"data.path={data}",
                                       f"model.name={model_dir}", f"output={out}",
                                       "train.epochs=4", "train.batch_size=8", "train.lr=3e-3",
                                       "data.max_length=24", *extra])
    occamtune.train(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def relation_run(relation_data, tmp_path_factory, tiny_model_dir) -> Path:
    return train_tiny(relation_data, tmp_path_factory.mktemp("relation") / "run", tiny_model_dir)


def test_reader_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("Other\t<e1>a</e1> b <e2>c</e2>\nOther\t<e1>a b <e2>c</e2>\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv, line 2: expected one </e1> marker"):
        read_relations(bad)
    swapped = tmp_path / "swapped.tsv"
    swapped.write_text("Other\t</e1>a<e1> <e2>c</e2>\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: a closing marker comes before"):
        read_relations(swapped)


def test_json_lines_with_offsets(tmp_path: Path) -> None:
    good = tmp_path / "rel.jsonl"
    text = "john visited paris ."
    good.write_text(json.dumps({"text": text, "head": [0, 4], "tail": {"start": 13, "end": 18},
                                "label": "Visit(e1,e2)"}) + "\n", encoding="utf-8")
    [ex] = read_relations(good).items
    assert ex.text == "<e1>john</e1> visited <e2>paris</e2> ." and ex.label == "Visit(e1,e2)"
    assert mark("ab", (1, 2), (0, 1)) == "<e2>a</e2><e1>b</e1>"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": text, "head": [0, 40], "tail": [13, 18], "label": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 1: `head` offsets \[0, 40\]"):
        read_relations(bad)


def test_a_long_sentence_keeps_its_arguments(tiny_model_dir: Path) -> None:
    from occamtune.models import add_task_tokens, load_tokenizer
    from occamtune.tasks.relation import encode_marked

    tok = load_tokenizer(str(tiny_model_dir), "relation")
    add_task_tokens(tok, "relation")
    text = "the film was good . " * 8 + "<e1>john</e1> visited <e2>paris</e2> ." + " it was fun ." * 8
    [feat] = encode_marked([text], tok, max_length=12)
    e1, e2 = tok.convert_tokens_to_ids(["<e1>", "<e2>"])
    assert len(feat["input_ids"]) == 12 and e1 in feat["input_ids"] and e2 in feat["input_ids"]


def test_official_score_counts_direction_and_excludes_other() -> None:
    gold = ["A(e1,e2)", "A(e1,e2)", "B(e2,e1)", "Other", "Other"]
    pred = ["A(e1,e2)", "A(e2,e1)", "B(e2,e1)", "B(e1,e2)", "Other"]
    m = relation_metrics(gold, pred)
    a, b = m["per_relation"]["A"], m["per_relation"]["B"]
    assert (a["precision"], a["recall"], a["wrong_direction"]) == (0.5, 0.5, 1)  # wrong direction
    assert (b["precision"], b["recall"]) == (0.5, 1.0)  # Other predicted as B costs B precision
    assert set(m["per_relation"]) == {"A", "B"}
    assert m["macro_f1"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)  # mean of per-relation F1s
    assert m["accuracy"] == pytest.approx(60.0)


def test_markers_are_special_tokens_and_survive_vocab_trimming(relation_run: Path,
                                                               tmp_path: Path) -> None:
    from occamtune.compress import load_artifact

    run = occamtune.load(relation_run)
    ids = run.tokenizer.convert_tokens_to_ids(list(MARKERS))
    assert all(i != run.tokenizer.unk_token_id for i in ids) and set(ids) <= set(
        run.tokenizer.all_special_ids)
    assert run.model.encoder.get_input_embeddings().num_embeddings == len(run.tokenizer)
    assert run.tokenizer.tokenize("<e1>john</e1>") == ["<e1>", "john", "</e1>"]
    occamtune.compress_run(relation_run, "vocab(min_count=1000000, rank=0)", tmp_path / "v",
                           progress=False, evaluate=False)
    emb = load_artifact(tmp_path / "v").encoder.embeddings.word_embeddings
    unk = int(emb.remap[run.tokenizer.unk_token_id])
    assert all(int(emb.remap[i]) != unk for i in ids), "a marker lost its row to [UNK]"
    assert len({int(emb.remap[i]) for i in ids}) == 4


def test_train_evaluate_predict(relation_run: Path) -> None:
    from occamtune.cli import main

    metrics = occamtune.evaluate(relation_run, split="dev")
    assert 0.0 <= metrics["macro_f1"] <= 100.0 and metrics["n"] == 18
    assert set(metrics["per_relation"]) == {"Visit"} and "confusion" in metrics
    report = (relation_run / "eval_test.md").read_text()
    assert "Official SemEval-2010 Task 8 score" in report and "Confusion matrix" in report
    [a, b] = occamtune.predict(relation_run, ["<e1>mary</e1> visited <e2>london</e2> on monday .",
                                              {"text": "mary visited london .", "head": [0, 4],
                                               "tail": [13, 19]}])
    assert a["relation"] in ("Visit(e1,e2)", "Visit(e2,e1)", "Other") and 0 < a["score"] <= 1
    assert b["text"] == "<e1>mary</e1> visited <e2>london</e2> ."
    with pytest.raises(DataError, match="line 1: expected one </e1> marker"):
        occamtune.predict(relation_run, ["<e1>mary visited <e2>london</e2>"])
    assert main(["evaluate", str(relation_run), "--split", "test"]) == 0


@pytest.mark.parametrize("pooling", ["cls", "last"])
def test_one_vector_representations(relation_data: Path, tmp_path: Path, tiny_model_dir: Path,
                                    pooling: str) -> None:
    out = train_tiny(relation_data, tmp_path / pooling, tiny_model_dir, f"model.pooling={pooling}",
                     "train.epochs=1")
    run = occamtune.load(out)
    assert run.model.head.pooling == pooling and run.model.head.out.in_features == 32


def test_compress_export_and_serve(relation_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from occamtune.serve.app import create_app

    result = occamtune.compress_run(relation_run, "prune(sparsity=0.5), quantize(bits=4)",
                                    tmp_path / "small", progress=False)
    assert result["sizes"]["model_occ"] < result["fp32_bytes"] and "macro_f1" in result["test"]
    small = occamtune.load(tmp_path / "small")
    texts = ["<e1>anna</e1> visited <e2>berlin</e2> on monday .",
             "in <e1>paris</e1> , <e2>john</e2> said it was good ."]
    expected = [r["relation"] for r in small.predict(texts)]
    occamtune.export(tmp_path / "small", tmp_path / "onnx")
    assert len(occamtune.predict(tmp_path / "onnx", texts)) == 2
    client = TestClient(create_app(tmp_path / "small"))
    assert client.get("/health").json()["task"] == "relation"
    got = client.post("/predict", json={"texts": texts})
    assert got.status_code == 200
    assert [p["relation"] for p in got.json()["predictions"]] == expected


def test_shrink(relation_run: Path, tmp_path: Path) -> None:
    summary = shrink_two_trials(relation_run, tmp_path / "s", vocab_trim=True)
    assert summary["metric"] == "macro_f1"
