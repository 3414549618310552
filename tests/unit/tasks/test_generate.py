"""The generate task on tiny random decoders: readers and their errors, the scores, the prompt and
its target-only loss, generation, save and reload, and every compression method."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from occamtune import inference
from occamtune.compress import CompressContext, compress, load_artifact, save_artifact
from occamtune.config import DECODING, DataConfig, GenerateConfig, ModelConfig, RunConfig
from occamtune.errors import ConfigError, DataError, ModelError
from occamtune.models import HeadConfig, build_model, load_model, load_tokenizer, save_model
from occamtune.models.generation import generate_texts, target_nll
from occamtune.tasks import get_task
from occamtune.tasks.generate import IGNORE
from occamtune.tasks.text_metrics import repeated_share, text_scores
from tests.fixtures.tiny_decoders import tiny_decoder_dir, tiny_gpt2_dir, tiny_llama_dir
from tests.fixtures.tiny_models import batches_context, tiny_finetune
from tests.unit.compress.test_contract import CASES

TASK = get_task("generate")
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "big", "red", "blue", "house", "tree"]


def write_pairs(path: Path, n: int, seed: int, refs: int = 1) -> Path:
    """`n` JSON lines: a source of two sentences (as a list) and its first two words as target."""
    import random

    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(n):
            first = " ".join(rng.choices(WORDS, k=6)) + "."
            source = [first, " ".join(rng.choices(WORDS, k=5)) + "."]
            targets = [" ".join(first.split()[:2]) + "."] + ["a second reference."] * (refs - 1)
            fh.write(json.dumps({"source": source, "target": targets}) + "\n")
    return path


# --- readers ------------------------------------------------------------------------------------
def test_json_lines_join_the_source_and_keep_every_reference(tmp_path: Path) -> None:
    ds = TASK.read(write_pairs(tmp_path / "test.jsonl", 3, 0, refs=2))
    assert len(ds.items) == 3 and ds.items[0].line == 1
    assert ds.items[0].source.count(".") == 2 and len(ds.items[0].references) == 2


def test_numbered_summaries_are_references(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"dialogue": "#Person1#: hi\n#Person2#: hello", "summary1": "a",
                                "summary2": "b", "summary3": "c", "topic": "x"}) + "\n")
    assert TASK.read(path).items[0].references == ["a", "b", "c"]


def test_a_row_without_a_target_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"source": "x", "target": "y"}) + "\n"
                    + json.dumps({"source": "x", "note": "y"}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl.*line 2.*data.label_field"):
        TASK.read(path)


def test_parallel_files_pair_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "train.de").write_text("ein Hund .\nzwei Katzen .\n")
    (tmp_path / "train.en").write_text("a dog .\ntwo cats .\n")
    data = DataConfig(input_field="de", label_field="en")
    ds = TASK.read(tmp_path / "train.de", data)
    assert [(e.source, e.references) for e in ds.items] == [
        ("ein Hund .", ["a dog ."]), ("zwei Katzen .", ["two cats ."])]
    (tmp_path / "train.en").write_text("a dog .\n")
    with pytest.raises(DataError, match=r"train.en.*1 lines but train.de has 2"):
        TASK.read(tmp_path / "train.de", data)


def test_a_folder_of_parallel_files_gives_its_splits(tmp_path: Path) -> None:
    from occamtune.train.prepare import read_splits

    for name in ("train", "val", "test_2016"):
        (tmp_path / f"{name}.de").write_text("ein Hund .\nzwei Katzen .\n")
        (tmp_path / f"{name}.en").write_text("a dog .\ntwo cats .\n")
    splits = read_splits(TASK, DataConfig(path=str(tmp_path), input_field="de", label_field="en"))
    assert {n: Path(s.path).name for n, s in splits.items()} == {
        "train": "train.de", "dev": "val.de", "test": "test_2016.de"}


# --- scores -------------------------------------------------------------------------------------
def test_scores_come_from_rouge_score_and_sacrebleu() -> None:
    perfect = text_scores([["the cat sat on the mat."]], ["the cat sat on the mat."])
    assert perfect["rougeL"] == pytest.approx(100) and perfect["bleu"] == pytest.approx(100)
    # the best of several references counts; stemming makes "cats" match "cat"
    best = text_scores([["a dog ran.", "the cats sat."]], ["the cat sat."])
    assert best["rouge1"] == pytest.approx(100)
    none = text_scores([["a b c"]], ["x y z"])
    assert none["rougeL"] == 0 and none["bleu"] == 0
    # one text written for every source: a collapse the share of distinct texts shows
    refs = [["a b."], ["c d."], ["e f."], ["g h."]]
    assert text_scores(refs, ["a b."] * 4)["distinct"] == 25
    assert text_scores(refs, ["a b.", "c d.", "a b. ", "x"])["distinct"] == 75
    # a text that says the same thing twice: trigrams "a b c", "b c a", "c a b", "a b c"
    assert repeated_share(["a b c a b c"]) == 25 and repeated_share(["A b c", "a b c"]) == 0
    assert text_scores([["a b c"]], ["a b c a b c"])["repeated"] == 25


# --- models -------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["llama-tied", "llama", "gpt2"])
def setup(request, tmp_path_factory) -> dict[str, Any]:
    return _setup(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def tied(tmp_path_factory) -> dict[str, Any]:
    """The tied Llama (SmolLM2's layout), on which every compression method runs."""
    return _setup("llama-tied", tmp_path_factory)


def _setup(name: str, tmp_path_factory: Any) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp(name)
    if name == "gpt2":
        tiny_gpt2_dir(folder)
    elif name in ("qwen2", "gemma3_text"):
        tiny_decoder_dir(folder, name)
    else:
        tiny_llama_dir(folder, tied=name == "llama-tied")
    tok = load_tokenizer(str(folder), "generate")
    run = RunConfig(task="generate")
    run.generate.max_new_tokens = 6
    head = HeadConfig(task="generate", labels=[], **TASK.head_options(ModelConfig(), tok, run))
    torch.manual_seed(0)
    model = build_model(str(folder), head, tok).eval()
    data = DataConfig(max_length=96)
    ds = TASK.read(write_pairs(folder / "train.jsonl", 12, 0))
    feats = TASK.encode(ds, tok, [], data, head=model.head_config)
    collate = TASK.collator(int(tok.pad_token_id))
    batches = [collate(feats[i:i + 4]) for i in range(0, len(feats), 4)]
    return {"name": name, "model": model, "tok": tok, "ds": ds, "feats": feats,
            "batches": batches, "folder": folder}


def test_the_loss_counts_the_target_alone(setup: dict[str, Any]) -> None:
    tok, feat, ex = setup["tok"], setup["feats"][0], setup["ds"].items[0]
    labels = [t for t in feat["labels"] if t != IGNORE]
    target = tok(" " + ex.references[0], add_special_tokens=False)["input_ids"][:5]
    assert labels == target + [tok.eos_token_id]
    # labels are the next sub-words: each one sits one place before it in the input
    p = feat["prompt"]
    assert feat["labels"][p - 1:p - 1 + len(labels)] == feat["input_ids"][p:p + len(labels)]
    assert ex.source.split()[0] in tok.decode(feat["input_ids"][:p])


def test_the_training_loss_is_the_loss_of_every_logit(setup: dict[str, Any]) -> None:
    """The output layer runs on the target's positions alone in training: the same value and
    the same gradients as the loss of the logits at every position."""
    model, batch = copy.deepcopy(setup["model"]).train(), setup["batches"][0]
    assert (batch["labels"] == IGNORE).any() and (batch["labels"] != IGNORE).any()
    grads = []
    for loss_of in (lambda: TASK.loss(model(**batch), batch), lambda: TASK.train_loss(model, batch)):
        torch.manual_seed(0)  # the same dropout masks
        model.zero_grad()
        loss = loss_of()
        loss.backward()
        grads.append((float(loss), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (full, full_grads), (kept, kept_grads) = grads
    assert kept == pytest.approx(full, rel=1e-5)
    assert len(kept_grads) == len(full_grads) > 0
    for a, b in zip(kept_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_distillation_reads_the_same_choices_from_the_target_positions(
        setup: dict[str, Any]) -> None:
    model, batch = setup["model"].eval(), setup["batches"][0]
    with torch.no_grad():
        logits, hidden = model.forward_with_hidden(**batch)
        choices, gold, got_hidden = TASK.choices(model, batch, hidden_states=True)
    expected, expected_gold = TASK.as_classes(logits, batch)
    torch.testing.assert_close(choices, expected.float())
    assert torch.equal(gold, expected_gold)
    assert len(got_hidden) == len(hidden)
    torch.testing.assert_close(got_hidden[-1], hidden[-1])


def test_a_tied_head_saves_no_weights_of_its_own(setup: dict[str, Any]) -> None:
    model = setup["model"]
    head_keys = [k for k in model.state_dict() if k.startswith("head.")]
    assert (head_keys == []) == (setup["name"] != "llama"), head_keys
    logits = model(**setup["batches"][0])
    assert logits.shape[-1] == len(setup["tok"])


def test_training_lowers_the_target_cost_and_reloads_the_same(setup: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    model, feats = copy.deepcopy(setup["model"]), setup["feats"]
    before = sum(target_nll(model, feats, 4))
    tiny_finetune(setup["batches"])(model, epochs=8, lr=3e-3)
    model.eval()
    assert sum(target_nll(model, feats, 4)) < 0.8 * before
    texts = generate_texts(model, feats[:5], 2)
    assert inference.throughput(model, feats[:4], 2) > 0  # what shrink's latency times: generation
    assert all(isinstance(t, str) for t in texts) and texts == generate_texts(model, feats[:5], 5)
    save_model(model, setup["tok"], tmp_path / "run")
    loaded, _, _ = load_model(tmp_path / "run")
    assert generate_texts(loaded, feats[:5], 5) == texts


def test_an_encoder_is_refused_with_a_reason(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    head = HeadConfig(task="generate", labels=[], **TASK.head_options(ModelConfig(), tok))
    with pytest.raises(ModelError, match="needs a decoder-only model"):
        build_model(str(tiny_model_dir), head, tok)


def test_encoding_needs_the_head_and_room_for_the_source(setup: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="head config"):
        TASK.encode(setup["ds"], setup["tok"], [], DataConfig())
    with pytest.raises(ConfigError, match="raise data.max_length"):
        TASK.encode(setup["ds"], setup["tok"], [], DataConfig(max_length=16),
                    head=setup["model"].head_config)


# --- compression --------------------------------------------------------------------------------
def _context(setup: dict[str, Any]) -> CompressContext:
    return batches_context(setup["batches"], setup["tok"], max_length=96)


@pytest.mark.parametrize("method", sorted(CASES))
def test_every_method_compresses_a_generator(method: str, tied: dict[str, Any],
                                             tmp_path: Path) -> None:
    setup = tied
    model, batch = copy.deepcopy(setup["model"]), setup["batches"][0]
    with torch.no_grad():
        before = model(**batch)
    config = CASES[method]
    if method == "lora":  # the case names BERT's projections; () takes the family's q and v
        config = dataclasses.replace(config, targets=())
    small = compress(model, [config], _context(setup)).eval()
    with torch.no_grad():
        after = small(**batch)
    assert after.shape == before.shape, f"{method}: {after.shape} != {before.shape}"
    texts = generate_texts(small, setup["feats"][:4], 4)
    save_artifact(small, setup["tok"], tmp_path / "a", meta={"fp32_bytes": 4 * 10**5})
    loaded = load_artifact(tmp_path / "a").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), after, atol=2e-3, rtol=2e-3)
    assert generate_texts(loaded, setup["feats"][:4], 4) == texts
    if method == "vocab":  # the output layer writes only the tokens the training data used
        seen = {int(i) for b in setup["batches"] for i in b["input_ids"].flatten()}
        unseen = sorted(set(range(after.shape[-1])) - seen - set(setup["tok"].all_special_ids))
        assert unseen and (after[..., unseen] < after.max() - 1e3).all()


# --- the whole path: train, evaluate, predict, serve (whole and streamed) -----------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    import occamtune
    from occamtune.config import load_config

    root = tmp_path_factory.mktemp("gen-run")
    model = tiny_llama_dir(root / "llama", tied=True)
    (root / "data").mkdir()
    for split, n, seed in (("train", 16, 0), ("dev", 4, 1), ("test", 4, 2)):
        write_pairs(root / "data" / f"{split}.jsonl", n, seed, refs=2 if split == "test" else 1)
    cfg = load_config(None, ["task=generate", f"data.path={root / 'data'}", f"model.name={model}",
                             f"output={root / 'run'}", "train.epochs=2", "train.batch_size=4",
                             "data.max_length=96", "generate.max_new_tokens=6"])
    occamtune.train(cfg, progress=False)
    return root / "run"


def test_a_trained_run_scores_predicts_and_streams(run_dir: Path) -> None:
    from fastapi.testclient import TestClient

    import occamtune
    from occamtune.serve.app import create_app

    report = json.loads((run_dir / "eval_test.json").read_text())
    assert {"rougeL", "bleu", "chrf", "data_bits"} <= set(report) and len(report["outputs"]) == 4
    assert report["outputs"][0]["references"][1] == "a second reference."
    predictor = occamtune.load(run_dir)
    [res] = predictor.predict(["the cat sat on a mat. a dog ran far."])
    assert set(res) == {"text", "generated"}
    client = TestClient(create_app(run_dir))
    whole = client.post("/predict", json={"texts": [res["text"]]}).json()["predictions"][0]
    assert whole["generated"] == res["generated"]
    got = client.post("/stream", json={"text": res["text"]})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in got.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1] == {"done": True, "generated": res["generated"]}
    assert "".join(e.get("token", "") for e in events[:-1]).strip() == res["generated"]
    # the ONNX export (a decoding step with a key/value cache) scores and streams the same
    onnx = run_dir.parent / "onnx"
    occamtune.export(run_dir, onnx, weights="fp32", exporter="torchscript")
    again = occamtune.evaluate(onnx, split="test", write=False)
    assert [o["prediction"] for o in again["outputs"]] == [o["prediction"] for o in report["outputs"]]
    assert again["data_bits"] == pytest.approx(report["data_bits"], rel=1e-4)
    streamed = TestClient(create_app(onnx)).post("/stream", json={"text": res["text"]})
    assert [json.loads(line[len("data: "):]) for line in streamed.text.splitlines()
            if line.startswith("data: ")] == events


def test_decoding_can_change_at_inference(run_dir: Path, capsys) -> None:
    """`evaluate` / `predict` / `serve` with `--generate.KEY VALUE`: this use decodes so, the
    run keeps its own settings, and the report says which were used."""
    import occamtune
    from occamtune.cli import main
    from occamtune.models.generation import decoding

    report = json.loads((run_dir / "eval_test.json").read_text())
    trained = report["decoding"]
    assert trained == {**{k: getattr(GenerateConfig(), k) for k in DECODING}, "max_new_tokens": 6}
    one = occamtune.evaluate(run_dir, split="test", write=False, decoding={"max_new_tokens": 1})
    assert one["decoding"]["max_new_tokens"] == 1
    # greedy: the first sub-word of each text the run's 6 allowed
    for short, full in zip(one["outputs"], report["outputs"]):
        assert full["prediction"].startswith(short["prediction"])
        assert len(short["prediction"]) < len(full["prediction"])
    beams = occamtune.load(run_dir, {"num_beams": "3", "no_repeat_ngram_size": 2})
    settings = decoding(beams.model)
    assert settings["num_beams"] == 3 and settings["no_repeat_ngram_size"] == 2
    assert decoding(occamtune.load(run_dir).model)["num_beams"] == 1  # the run is unchanged
    # the CLI: the report names the settings; a bad value or a fixed setting exits 2
    assert main(["evaluate", str(run_dir), "--split", "dev", "--generate.num_beams", "2",
                 "--generate.repetition_penalty", "1.3"]) == 0
    err = capsys.readouterr().err
    assert "Decoding: beam search, 2 beams" in err and "repetition penalty 1.3" in err
    assert json.loads((run_dir / "eval_dev.json").read_text())["decoding"]["num_beams"] == 2
    assert main(["predict", str(run_dir), "a text", "--generate.num_beams", "0"]) == 2
    assert "generate.num_beams must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="generate.instruction are fixed by training"):
        occamtune.load(run_dir, {"instruction": "Shorten."})
    with pytest.raises(ConfigError, match="generate.beams are not generate settings"):
        occamtune.load(run_dir, {"beams": 2})


def test_compress_and_shrink_keep_the_decoding_they_are_given(run_dir: Path, tmp_path: Path,
                                                              capsys) -> None:
    """`compress` / `shrink` with `--generate.KEY VALUE`: the artifact is scored decoding so and
    keeps the settings (the run keeps its own); every candidate and the base of a search decode
    so, and the study refuses other settings."""
    import occamtune
    from occamtune.cli import main
    from occamtune.models.generation import decoding
    from occamtune.search.space import SearchSpace

    full = json.loads((run_dir / "eval_test.json").read_text())["outputs"]
    assert main(["compress", str(run_dir), "--pipeline", "quantize(bits=8)", "--output",
                 str(tmp_path / "q8"), "--quiet", "--generate.max_new_tokens", "1"]) == 0
    capsys.readouterr()
    assert decoding(occamtune.load(tmp_path / "q8").model)["max_new_tokens"] == 1
    one = json.loads((tmp_path / "q8" / "eval_test.json").read_text())
    assert one["decoding"]["max_new_tokens"] == 1
    assert all(len(o["prediction"]) < len(f["prediction"]) for o, f in zip(one["outputs"], full))
    assert decoding(occamtune.load(run_dir).model)["max_new_tokens"] == 6  # the run's own

    space = SearchSpace(distill_layers=(0,), ffn=(0.0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        bits=(8,), vocab_trim=(False,), codebook=(False,))
    result = occamtune.shrink(run_dir, tmp_path / "search", max_drop=100.0, budget_trials=1,
                              space=space, progress=False, decoding={"max_new_tokens": "1"})
    assert result.summary["decoding"] == {"max_new_tokens": 1}
    base = json.loads((tmp_path / "search" / "base.json").read_text())
    assert base["decoding"] == {"max_new_tokens": 1}
    chosen = occamtune.load(result.chosen_folder)
    assert decoding(chosen.model)["max_new_tokens"] == 1
    with pytest.raises(ConfigError, match="decoding settings"):  # the run's own: another study
        occamtune.shrink(run_dir, tmp_path / "search", max_drop=100.0, budget_trials=1,
                         space=space, progress=False)


def test_a_translation_run_reads_a_parallel_file_as_it_was_trained(tmp_path: Path) -> None:
    """`evaluate --file test.de` on a run trained on `.de`/`.en` files: the run's own
    `data.input_field` / `data.label_field` pair the file with its `.en` side."""
    import occamtune
    from occamtune.config import load_config

    model = tiny_llama_dir(tmp_path / "llama", tied=True)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train", "val", "test"):
        (data / f"{name}.de").write_text("ein Hund .\nzwei Katzen .\n")
        (data / f"{name}.en").write_text("a dog .\ntwo cats .\n")
    cfg = load_config(None, ["task=generate", f"data.path={data}", f"model.name={model}",
                             f"output={tmp_path / 'run'}", "train.epochs=1", "train.batch_size=2",
                             "data.input_field=de", "data.label_field=en", "data.max_length=96",
                             "generate.max_new_tokens=4"])
    occamtune.train(cfg, progress=False)
    by_split = occamtune.evaluate(tmp_path / "run", split="test", write=False)
    by_file = occamtune.evaluate(tmp_path / "run", file=data / "test.de", write=False)
    assert by_file["n"] == 2 and by_file["bleu"] == by_split["bleu"]
    assert [o["references"] for o in by_file["outputs"]] == [["a dog ."], ["two cats ."]]
