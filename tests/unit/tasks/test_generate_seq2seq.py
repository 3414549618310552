"""The generate task on whole encoder-decoders: T5, BART, and an encoder-only checkpoint
warm-started as both halves of an `EncoderDecoderModel` (tiny random models, seconds each)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from occamtune.compress import compress, load_artifact, save_artifact
from occamtune.compress.distill import DistillConfig
from occamtune.compress.prune import PruneConfig
from occamtune.compress.quantize import QuantizeConfig
from occamtune.compress.structured import StructuredPruneConfig
from occamtune.compress.vocab import VocabTrimConfig
from occamtune.config import DataConfig, ModelConfig, RunConfig
from occamtune.errors import ModelError
from occamtune.models import HeadConfig, build_model, load_model, load_tokenizer, save_model
from occamtune.models.generation import decoding, generate_texts, stream_text, target_nll
from occamtune.tasks import get_task
from occamtune.tasks.generate import IGNORE
from occamtune.train.run import pretrained_base
from tests.fixtures.tiny_models import batches_context, tiny_finetune
from tests.fixtures.tiny_seq2seq import tiny_bart_dir, tiny_t5_dir
from tests.unit.tasks.test_generate import write_pairs

TASK = get_task("generate")


FAMILIES = ("bert2bert", "t5", "bart")


@pytest.fixture(scope="module", params=FAMILIES)
def setup(request, tmp_path_factory, tiny_model_dir: Path) -> dict[str, Any]:
    return seq2seq_setup(request.param, tmp_path_factory, tiny_model_dir)


def seq2seq_setup(name: str, tmp_path_factory: Any, tiny_model_dir: Path) -> dict[str, Any]:
    """A tiny encoder-decoder of `name` (one of FAMILIES: the BERT folder warm-started as both
    halves, or a T5 or BART folder), its tokenizer, 12 pairs and their features and batches."""
    folder = tiny_model_dir
    if name == "t5":
        folder = tiny_t5_dir(tmp_path_factory.mktemp("t5"))
    elif name == "bart":
        folder = tiny_bart_dir(tmp_path_factory.mktemp("bart"))
    tok = load_tokenizer(str(folder), "generate")
    run = RunConfig(task="generate")
    run.generate.max_new_tokens = 12  # the tiny vocabularies' references: 5 to 12 sub-words
    torch.manual_seed(0)
    base = pretrained_base(str(folder), run, tok)
    head = HeadConfig(task="generate", labels=[], **TASK.head_options(ModelConfig(), tok, run))
    model = build_model(str(folder), head, tok, encoder=base).eval()
    ds = TASK.read(write_pairs(tmp_path_factory.mktemp("pairs") / "train.jsonl", 12, 0))
    feats = TASK.encode(ds, tok, [], DataConfig(max_length=64), head=model.head_config)
    collate = TASK.collator(int(tok.pad_token_id))
    batches = [collate(feats[i:i + 4]) for i in range(0, len(feats), 4)]
    return {"name": name, "model": model, "tok": tok, "ds": ds, "feats": feats, "batches": batches}


def test_the_model_is_a_whole_encoder_decoder(setup: dict[str, Any]) -> None:
    model = setup["model"]
    assert model.seq2seq and not model.decoder_only
    kind = {"bert2bert": "EncoderDecoderModel", "t5": "T5ForConditionalGeneration",
            "bart": "BartForConditionalGeneration"}[setup["name"]]
    assert type(model.encoder).__name__ == kind
    assert model.head_config.extra["decoder_start"] == model.encoder.config.decoder_start_token_id


def test_the_source_feeds_the_encoder_and_the_target_the_decoder(setup: dict[str, Any]) -> None:
    tok, feat, pair = setup["tok"], setup["feats"][0], setup["ds"].items[0]
    extra = setup["model"].head_config.extra
    assert feat["labels"][-1] == extra["eos_id"] and IGNORE not in feat["labels"]
    assert feat["decoder_input_ids"] == [extra["decoder_start"]] + feat["labels"][:-1]
    target = tok(pair.references[0], add_special_tokens=False)["input_ids"]
    # the reference, cut to max_new_tokens with its EOS and any opening mark the tokenizer
    # gives a text (BART's <s>: its decoder starts with </s>, then writes <s>)
    body = [t for t in feat["labels"][:-1] if t not in tok.all_special_ids]
    marks = len(feat["labels"]) - 1 - len(body)
    assert marks <= 1 and body == target[: extra["max_new_tokens"] - 1 - marks]
    source = tok(pair.source, add_special_tokens=False)["input_ids"]
    assert tok.decode(feat["input_ids"], skip_special_tokens=True).strip() == \
        tok.decode(source, skip_special_tokens=True).strip()
    assert feat["prompt"] == len(feat["input_ids"])  # generation reads the whole source


def test_the_loss_is_transformers_own_seq2seq_loss(setup: dict[str, Any]) -> None:
    """Labels in, the model shifts them to its decoder's inputs (its own convention, including
    the -100 padding): the same loss as the task's decoder inputs built at encoding time."""
    model, batch = setup["model"], setup["batches"][0]
    assert (batch["labels"] == IGNORE).any()  # targets of different lengths: padding is tested
    with torch.no_grad():
        ours = TASK.train_loss(model, batch)
        theirs = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               labels=batch["labels"]).loss
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_training_lowers_the_cost_and_the_run_reloads_and_streams_the_same(
        setup: dict[str, Any], tmp_path: Path) -> None:
    model, feats = copy.deepcopy(setup["model"]), setup["feats"]
    before = sum(target_nll(model, feats, 4))
    tiny_finetune(setup["batches"])(model, epochs=8, lr=3e-3, loss_fn=TASK.train_loss)
    model.eval()
    assert sum(target_nll(model, feats, 4)) < 0.8 * before
    texts = generate_texts(model, feats[:5], 2)
    assert texts == generate_texts(model, feats[:5], 5)  # right padding: batching changes nothing
    assert "".join(stream_text(model, feats[0])).strip() == texts[0]
    save_model(model, setup["tok"], tmp_path / "run")
    loaded, _, meta = load_model(tmp_path / "run")
    assert meta.head.extra["seq2seq"] and loaded.seq2seq
    assert generate_texts(loaded, feats[:5], 5) == texts
    assert target_nll(loaded, feats, 4) == pytest.approx(target_nll(model, feats, 4), rel=1e-5)


@pytest.mark.parametrize("configs", [[QuantizeConfig(bits=4)], [PruneConfig(sparsity=0.5)]],
                         ids=["quantize", "prune"])
def test_methods_without_a_layout_compress_it(setup: dict[str, Any], configs: list,
                                              tmp_path: Path) -> None:
    model, batch = copy.deepcopy(setup["model"]), setup["batches"][0]
    ctx = batches_context(setup["batches"], setup["tok"], max_length=64)
    small = compress(model, configs, ctx).eval()
    texts = generate_texts(small, setup["feats"][:4], 4)
    sizes = save_artifact(small, setup["tok"], tmp_path / "a", meta={"fp32_bytes": 4 * 10**6})
    loaded = load_artifact(tmp_path / "a").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), small(**batch), atol=2e-3, rtol=2e-3)
    assert generate_texts(loaded, setup["feats"][:4], 4) == texts
    assert sizes["model_occ"] < 4 * _params(model)  # smaller than its float32 weights


def _params(model: Any) -> int:
    """Distinct parameters (tied weights once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _layer_counts(model: Any) -> list[int]:
    from occamtune.models.families import stacks_of

    return [len(stack.layers()) for stack in stacks_of(model.encoder)]


def _widths(model: Any) -> list[list[tuple[int, int]]]:
    """Per stack and layer: (output projection's input width, feed-forward width)."""
    from occamtune.models.families import stacks_of

    return [[(s.family.part(layer, "o").in_features, s.family.part(layer, "down").in_features)
             for layer in s.layers()] for s in stacks_of(model.encoder)]


@pytest.mark.parametrize("configs", [[StructuredPruneConfig(heads=0.5, ffn=0.5, epochs=1)],
                                     [DistillConfig(layers=1, epochs=1)],
                                     [VocabTrimConfig(rank=4, keep_top=0)]],
                         ids=["structured", "distill", "vocab"])
def test_layout_methods_cut_both_halves_and_the_artifact_replays_them(
        setup: dict[str, Any], configs: list, tmp_path: Path) -> None:
    """structured cuts the self-attention heads and feed-forward neurons of every layer of
    both halves (the cross-attention stays whole); distill drops decoder layers and trains the
    student on the teacher's next-sub-word distributions and decoder states. The artifact
    rebuilds the same model: the same costs, the same texts, and fewer bytes."""
    model, batch = copy.deepcopy(setup["model"]), setup["batches"][0]
    ctx = batches_context(setup["batches"], setup["tok"], max_length=64)
    small = compress(model, configs, ctx).eval()
    if configs[0].name == "structured":
        before, after = _widths(setup["model"]), _widths(small)
        assert [len(s) for s in after] == [len(s) for s in before]
        for old_stack, new_stack in zip(before, after):
            for (o, f), (o2, f2) in zip(old_stack, new_stack):
                assert o2 == o // 2 and f2 == f // 2
    elif configs[0].name == "distill":
        assert _layer_counts(small) == [_layer_counts(setup["model"])[0], 1]
    else:  # the training data's sub-words keep their rows, the output layer writes only them
        counts = ctx.token_counts()
        assert small.encoder.get_input_embeddings().embedding.num_embeddings < \
            setup["model"].encoder.get_input_embeddings().num_embeddings
        with torch.no_grad():
            logits = small(**batch)
        written = set(logits.argmax(-1).flatten().tolist())
        assert written <= set(counts) | set(setup["tok"].all_special_ids)
        kept = small.encoder.get_output_embeddings().kept_ids
        unseen = [i for i in range(logits.shape[-1]) if i not in set(kept.tolist())]
        assert unseen and float(logits[..., unseen].max()) < -1e3
    texts = generate_texts(small, setup["feats"][:4], 4)
    # the key/value cache holds one slot per remaining layer: cached decoding writes the same
    ids = torch.tensor([setup["feats"][0]["input_ids"]])
    settings = decoding(small)
    with torch.no_grad():
        cached = small.encoder.generate(input_ids=ids, **settings)
        uncached = small.encoder.generate(input_ids=ids, **{**settings, "use_cache": False})
    assert torch.equal(cached, uncached)
    # float32 storage: the replayed structure is checked exactly, not through fp16 rounding
    save_artifact(small, setup["tok"], tmp_path / "a", meta={"fp32_bytes": 4 * 10**6},
                  half_floats=False)
    loaded = load_artifact(tmp_path / "a").eval()
    assert _widths(loaded) == _widths(small)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), small(**batch), atol=1e-5, rtol=1e-5)
    assert generate_texts(loaded, setup["feats"][:4], 4) == texts
    assert _params(loaded) < _params(setup["model"])


def test_the_decoder_layers_of_the_calibration_pass_skip_the_target_padding(
        setup: dict[str, Any]) -> None:
    """A decoder layer's statistics are over the target's real sub-words (its padding marked
    by decoder_attention_mask), an encoder layer's over the source's."""
    from occamtune.compress.calibrate import token_means
    from occamtune.models.families import stacks_of

    model, batches = setup["model"], setup["batches"]
    enc, dec = stacks_of(model.encoder)
    modules = {"enc": enc.family.part(enc.layers()[0], "q"),
               "dec": dec.family.part(dec.layers()[0], "q")}
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    hooks = [m.register_forward_hook(lambda _m, args, _o, name=name: seen[name].append(args[0]))
             for name, m in modules.items()]
    with torch.no_grad():
        for batch in batches:
            model(**batch)
    for hook in hooks:
        hook.remove()
    means = token_means(model, modules, lambda: iter(batches), lambda x: x.pow(2).sum(dim=0))
    for name, key in (("enc", "attention_mask"), ("dec", "decoder_attention_mask")):
        real = torch.cat([x[b[key].bool()] for x, b in zip(seen[name], batches)])
        padded = torch.cat([x.flatten(0, 1) for x in seen[name]])
        assert len(padded) > len(real)  # the batches pad this half
        torch.testing.assert_close(means[name], real.pow(2).mean(dim=0))


def test_methods_that_read_one_stack_refuse_with_a_reason(setup: dict[str, Any]) -> None:
    from occamtune.compress.share import ShareConfig

    ctx = batches_context(setup["batches"], setup["tok"], max_length=64)
    with pytest.raises(ModelError, match="whole encoder-decoder generator.*structured, distill"):
        compress(copy.deepcopy(setup["model"]), [ShareConfig(groups=1)], ctx)


def test_halves_that_share_their_weights_refuse_the_layout_methods(tiny_model_dir: Path) -> None:
    from occamtune.models.families import stacks_of

    run = RunConfig(task="generate")
    run.generate.tie_encoder_decoder = True
    tok = load_tokenizer(str(tiny_model_dir), "generate")
    base = pretrained_base(str(tiny_model_dir), run, tok)
    for method in ("structured", "distill"):
        with pytest.raises(ModelError, match=f"{method}: the two halves .* one set of weights"):
            stacks_of(base, method)


def test_the_warm_starts_new_weights_learn_at_the_heads_rate(tiny_model_dir: Path) -> None:
    """The weights the checkpoint lacks (cross-attention, the LM head's transform) are listed,
    and the optimizer gives them train.head_lr; every pretrained weight keeps train.lr."""
    from occamtune.train.loop import fresh_parameters, param_groups

    run = RunConfig(task="generate")
    tok = load_tokenizer(str(tiny_model_dir), "generate")
    base = pretrained_base(str(tiny_model_dir), run, tok)
    fresh = fresh_parameters(base)
    assert fresh and all(n.startswith("decoder.") for n in fresh)
    assert any(".crossattention." in n for n in fresh) and not any(
        "attention.self" in n and "crossattention" not in n for n in fresh)
    layers = base.config.decoder.num_hidden_layers
    assert sum(".crossattention.self.query.weight" in n for n in fresh) == layers
    head = HeadConfig(task="generate", labels=[], **TASK.head_options(ModelConfig(), tok, run))
    model = build_model(str(tiny_model_dir), head, tok, encoder=base)
    fast = {id(p) for g in param_groups(model, 0.01, 1e-3, 1e-5) if g["lr"] == 1e-3
            for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in fast} == {n for n in names.values()
                                        if n.startswith("head.") or n in fresh_parameters(model)}
    assert {n for n in fresh_parameters(model)} == {f"encoder.{n}" for n in fresh}


def test_training_from_an_encoder_checkpoint_warm_starts_an_encoder_decoder(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    """`occamtune train --task generate --model <encoder>`: both halves start from the
    checkpoint (Rothe et al. 2020); with tie_encoder_decoder they are one set of weights."""
    import occamtune
    from occamtune.config import load_config

    (tmp_path / "data").mkdir()
    for split, n, seed in (("train", 12, 0), ("dev", 4, 1), ("test", 4, 2)):
        write_pairs(tmp_path / "data" / f"{split}.jsonl", n, seed)
    sizes = {}
    for tie in (False, True):
        out = tmp_path / f"run-{tie}"
        cfg = load_config(None, ["task=generate", f"data.path={tmp_path / 'data'}",
                                 f"model.name={tiny_model_dir}", f"output={out}",
                                 "train.epochs=1", "train.batch_size=4", "data.max_length=64",
                                 "generate.max_new_tokens=6", f"generate.tie_encoder_decoder={tie}"])
        run = occamtune.train(cfg, progress=False)
        enc, dec = run.model.encoder.encoder, run.model.encoder.decoder
        shared = enc.encoder.layer[0].attention.self.query.weight is \
            dec.bert.encoder.layer[0].attention.self.query.weight
        assert shared == tie
        report = json.loads((out / "eval_test.json").read_text())
        assert report["n"] == 4 and "rougeL" in report
        sizes[tie] = (out / "model.safetensors").stat().st_size
        again = occamtune.evaluate(out, split="test", write=False)
        assert [o["prediction"] for o in again["outputs"]] == [o["prediction"] for o in report["outputs"]]
    assert sizes[True] < sizes[False]  # the tied halves are saved once


def test_a_source_longer_than_the_encoders_positions_is_refused(setup: dict[str, Any]) -> None:
    from occamtune.errors import ConfigError
    from occamtune.models.task_model import check_max_length, max_positions

    limit = max_positions(setup["model"])
    if setup["name"] == "t5":  # relative positions: no bound
        assert limit is None
        return
    assert limit == 128
    check_max_length(setup["model"], 128, "tiny")
    with pytest.raises(ConfigError, match="at most 128"):
        check_max_length(setup["model"], 129, "tiny")


def test_tying_halves_a_model_has_not_is_refused(tmp_path: Path) -> None:
    from occamtune.config import load_config
    from occamtune.errors import ConfigError
    from tests.fixtures.tiny_decoders import tiny_llama_dir

    llama, t5 = tiny_llama_dir(tmp_path / "llama"), tiny_t5_dir(tmp_path / "t5")
    for model, error, reason in ((llama, ConfigError, "has no such halves"),
                                 (t5, ModelError, "halves of its own")):
        cfg = load_config(None, ["task=generate", f"model.name={model}",
                                 "generate.tie_encoder_decoder=true"])
        with pytest.raises(error, match=reason):
            pretrained_base(str(model), cfg, load_tokenizer(str(model), "generate"))


def test_the_search_leaves_out_what_an_encoder_decoder_refuses(setup: dict[str, Any],
                                                                tiny_model_dir: Path) -> None:
    from occamtune.search.space import SearchSpace, refused_methods

    refused = refused_methods(setup["model"])
    assert list(refused) == ["codebook"] and "whole encoder-decoder" in refused["codebook"]
    assert refused_methods(_tagger(tiny_model_dir)) == {}  # one stack: every method runs
    space = SearchSpace().for_teacher(6, tuple(refused))
    assert space.codebook == (False,) and space.vocab_trim == SearchSpace().vocab_trim


def _tagger(folder: Path) -> Any:
    tok = load_tokenizer(str(folder), "ner")
    return build_model(str(folder), HeadConfig(task="ner", labels=["O", "B-X"]), tok)


@pytest.mark.slow  # trials that train a tiny BERT2BERT: about half a minute
def test_shrink_searches_a_warm_started_encoder_decoder(tmp_path: Path, tiny_model_dir: Path,
                                                        capsys) -> None:
    """`occamtune shrink` on a generator with two stacks: no trial fails on a method that
    refuses them (codebook), and the choice is smaller and loads."""
    import occamtune
    from occamtune.config import load_config
    from occamtune.search.space import SearchSpace

    (tmp_path / "data").mkdir()
    for split, n, seed in (("train", 16, 0), ("dev", 4, 1), ("test", 4, 2)):
        write_pairs(tmp_path / "data" / f"{split}.jsonl", n, seed)
    cfg = load_config(None, ["task=generate", f"data.path={tmp_path / 'data'}",
                             f"model.name={tiny_model_dir}", f"output={tmp_path / 'run'}",
                             "train.epochs=1", "train.batch_size=4", "data.max_length=96",
                             "generate.max_new_tokens=6"])
    occamtune.train(cfg, progress=False)
    space = SearchSpace(distill_layers=(0,), sparsity=(0.0,), lowrank_energy=(0.0,),
                        ffn=(0.5,), bits=(4,), vocab_rank=(8,), codebook=(False, True))
    result = occamtune.shrink(tmp_path / "run", tmp_path / "shrink", max_drop=100.0,
                              budget_trials=3, space=space, progress=False)
    assert "left out of the search: codebook: not supported" in capsys.readouterr().err
    summary = result.summary
    assert summary["trials"]["failed"] == 0 and summary["failures"] == []
    assert all("codebook" not in r["pipeline"] for r in result.records)
    assert summary["chosen_bytes"] < summary["base_bytes"]
    [res] = occamtune.load(tmp_path / "shrink" / "chosen").predict(["the cat sat on a mat."])
    assert isinstance(res["generated"], str)
