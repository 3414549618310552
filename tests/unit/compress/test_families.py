"""Every model family x every compression method x the token and sequence tasks.

For each family a tiny random model is built from its transformers config class (2 layers,
hidden 32, 4 heads, 2 key/value heads where the family has GQA, vocabulary 160: the tiny
tokenizer's ids fit). Each cell trains one step, compresses, saves the artifact, reloads it,
and checks that the reloaded model predicts what the model in memory predicts and that the bytes
on disk went down (the trainable parameters, for the methods that shrink only those). A pair the
family refuses is asserted to refuse with its message. `docs/families.md` holds the support
table this file checks (`render_table`); rewrite it with
`PYTHONPATH=src python -m tests.unit.compress.test_families`.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from occamtune.compress import (
    METHODS,
    CodebookConfig,
    CompressContext,
    LoraConfig,
    QuantizeConfig,
    StructuredPruneConfig,
    VocabTrimConfig,
    compress,
    load_artifact,
    save_artifact,
)
from occamtune.compress.record import record_of
from occamtune.errors import ModelError
from occamtune.models import FAMILIES, HeadConfig, TaskModel, encoder_from_config
from occamtune.models.families import get_path
from tests.fixtures.tiny_models import CLASS_LABELS, NER_LABELS, tiny_batches, tiny_finetune
from tests.unit.compress.test_contract import CASES as BERT_CASES
from tests.unit.compress.test_contract import TRAINABLE_ONLY

DOCS = Path(__file__).resolve().parents[3] / "docs" / "families.md"
VOCAB = 160
TASKS = ("ner", "classify")
# the contract cases, with LoRA on the family's own query and value projections and the
# position table cut to the run's max_length
CASES = {**BERT_CASES, "lora": LoraConfig(r=2), "vocab": VocabTrimConfig(positions=True)}
MAX_LENGTH = 16


def _configs() -> dict[str, Callable[[], Any]]:
    import transformers as tf

    common = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64}
    gqa = {**common, "num_key_value_heads": 2, "pad_token_id": 0}
    return {
        "bert": lambda: tf.BertConfig(**common),
        "roberta": lambda: tf.RobertaConfig(**common, pad_token_id=1),
        "electra": lambda: tf.ElectraConfig(**common, embedding_size=16),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                                  hidden_dim=64, max_position_embeddings=64),
        "deberta-v2": lambda: tf.DebertaV2Config(
            **common, relative_attention=True, pos_att_type=["p2c", "c2p"],
            position_biased_input=False, position_buckets=16, max_relative_positions=64,
            norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0),
        "albert": lambda: tf.AlbertConfig(**common, embedding_size=16),
        "llama": lambda: tf.LlamaConfig(**gqa),
        "mistral": lambda: tf.MistralConfig(**gqa, sliding_window=16),
        "qwen2": lambda: tf.Qwen2Config(**gqa),
        "gemma3_text": lambda: tf.Gemma3TextConfig(**gqa, head_dim=8, sliding_window=16),
        "gpt2": lambda: tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                                      n_positions=64, pad_token_id=0, bos_token_id=1,
                                      eos_token_id=1),
        "t5": lambda: tf.T5Config(vocab_size=VOCAB, d_model=32, num_layers=2, num_heads=4, d_kv=8,
                                  d_ff=64, pad_token_id=0, decoder_start_token_id=0),
        "t5-gated": lambda: tf.T5Config(vocab_size=VOCAB, d_model=32, num_layers=2, num_heads=4,
                                        d_kv=8, d_ff=64, pad_token_id=0, decoder_start_token_id=0,
                                        feed_forward_proj="gated-gelu"),
        "bart": lambda: tf.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2,
                                      decoder_layers=2, encoder_attention_heads=4,
                                      decoder_attention_heads=4, encoder_ffn_dim=64,
                                      decoder_ffn_dim=64, max_position_embeddings=64),
    }


CONFIGS = _configs()
ENCODER_DECODERS = ("t5", "t5-gated", "bart")  # their encoder stacks run the tasks
RUNNABLE = list(CONFIGS)


def family_of_name(name: str) -> Any:
    config = CONFIGS[name]()
    return FAMILIES[config.model_type].for_config(config)


def build(family: str, task: str, seed: int = 0) -> TaskModel:
    from transformers import AutoModel

    torch.manual_seed(seed)
    labels = NER_LABELS if task == "ner" else CLASS_LABELS
    head = HeadConfig(task=task, labels=labels)
    return TaskModel(encoder_from_config(AutoModel, CONFIGS[family]()), head).eval()


def batches(task: str, n: int = 2) -> list[dict[str, torch.Tensor]]:
    out = tiny_batches(n=n, batch=4, seq=12, task=task, vocab=100)
    for b in out:  # a padded tail: the methods and the heads must leave padding out
        b["attention_mask"][1, 9:] = 0
    return out


def context(task: str, tokenizer: Any) -> CompressContext:
    train = batches(task)

    def token_counts() -> dict[int, int]:
        return dict(Counter(int(i) for b in train for i in b["input_ids"].flatten()))

    return CompressContext(finetune=tiny_finetune(train[:1]), calibration=lambda: iter(train),
                           token_counts=token_counts, tokenizer=tokenizer, max_length=MAX_LENGTH,
                           seed=0)


def refusal(family: str, method: str) -> str | None:
    """What the family says when it refuses `method` (None: supported)."""
    adapter = family_of_name(family)
    return adapter.refusal(method) if method in adapter.refuses else None


def _logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch)


@pytest.fixture(scope="module")
def trained(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Any]:
    """(family, task) -> (a model trained one step, bytes of its artifact), built once."""
    cache: dict[tuple[str, str], tuple[TaskModel, int]] = {}

    def get(family: str, task: str) -> tuple[TaskModel, int]:
        if (family, task) not in cache:
            model = tiny_finetune(batches(task)[:1])(build(family, task))
            folder = tmp_path_factory.mktemp(f"{family}-{task}-base")
            base = save_artifact(copy.deepcopy(model), tokenizer, folder)["model_occ"]
            cache[family, task] = (model, base)
        return cache[family, task]

    return get


def run_cell(family: str, method: str, task: str, tokenizer: Any, trained: Any,
             folder: Path) -> None:
    model, base = trained(family, task)
    model = copy.deepcopy(model)
    batch = batches(task, n=3)[2]
    before = _logits(model, batch)
    why = refusal(family, method)
    if why is not None:
        with pytest.raises(ModelError, match=re.escape(why)):
            compress(model, [CASES[method]], context(task, tokenizer))
        return
    small = compress(model, [CASES[method]], context(task, tokenizer))
    after = _logits(small, batch)
    assert after.shape == before.shape, f"{family}/{method}/{task}: {after.shape} != {before.shape}"
    sizes = save_artifact(small, tokenizer, folder)
    step = record_of(small).log()[-1]
    if method in TRAINABLE_ONLY:
        assert step["trainable"] < step["params_before"], step
    else:
        assert sizes["model_occ"] < base, f"{family}/{method}/{task}: {sizes['model_occ']} >= {base}"
    loaded = load_artifact(folder)
    exact = method == "quantize"
    tol = 1e-5 if exact else 2e-3
    torch.testing.assert_close(_logits(loaded, batch), after, atol=tol, rtol=tol,
                               msg=lambda m: f"{family}/{method}/{task}: {m}")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("method", sorted(CASES))
@pytest.mark.parametrize("family", RUNNABLE)
def test_family_method_task(family: str, method: str, task: str, tokenizer, trained,
                            tmp_path) -> None:
    run_cell(family, method, task, tokenizer, trained, tmp_path)


QUANT_VARIANTS = {
    "gptq": QuantizeConfig(bits=4, group_size=16, rounding="gptq", ffn_bits=3),
    "qat": QuantizeConfig(bits=4, group_size=16, epochs=1, hidden_weight=1.0),
}


@pytest.mark.parametrize("variant", sorted(QUANT_VARIANTS))
@pytest.mark.parametrize("family", RUNNABLE)
def test_family_quantize_variants(family: str, variant: str, tokenizer, trained, tmp_path) -> None:
    """GPTQ (per-layer Hessians, coarser FFN codes: the adapter's MLP projections) and
    quantization-aware training (the adapter's layers tapped) on every family."""
    model, base = trained(family, "ner")
    small = compress(copy.deepcopy(model), [QUANT_VARIANTS[variant]], context("ner", tokenizer))
    batch = batches("ner", n=3)[2]
    sizes = save_artifact(small, tokenizer, tmp_path)
    assert sizes["model_occ"] < base
    if variant == "gptq":
        assert {c.bits for c in record_of(small).codes.values()} == {3, 4}
    torch.testing.assert_close(_logits(load_artifact(tmp_path), batch), _logits(small, batch),
                               atol=1e-5, rtol=1e-5)


PIPELINE = [StructuredPruneConfig(heads=0.5, ffn=0.5, epochs=0), VocabTrimConfig(rank=8),
            CodebookConfig(size=16, fallback_dim=4), QuantizeConfig(bits=4, group_size=16)]


@pytest.mark.parametrize("family", RUNNABLE)
def test_family_pipeline(family: str, tokenizer, trained, tmp_path) -> None:
    """The layout methods compose: pruned layers, a trimmed and coded vocabulary (Gemma's scale
    kept once, outside), k-bit codes; the artifact replays all of it."""
    model, base = trained(family, "ner")
    small = compress(copy.deepcopy(model), PIPELINE, context("ner", tokenizer))
    sizes = save_artifact(small, tokenizer, tmp_path)
    assert sizes["model_occ"] < base / 2, (sizes["model_occ"], base)
    batch = batches("ner", n=3)[2]
    torch.testing.assert_close(_logits(load_artifact(tmp_path), batch), _logits(small, batch),
                               atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("family", RUNNABLE)
def test_vocab_trim_keeps_outputs_on_seen_tokens(family: str, tokenizer, trained) -> None:
    """On text of tokens the corpus has (every row kept) the trimmed model answers exactly as
    the full one: the rows, their scale (Gemma's) and the positions read are the same."""
    model, _ = trained(family, "ner")
    seen = batches("ner")[0]  # one of the batches token_counts reads
    small = compress(copy.deepcopy(model), [VocabTrimConfig(positions=True)],
                     context("ner", tokenizer))
    torch.testing.assert_close(_logits(small, seen), _logits(model, seen), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", RUNNABLE)
def test_int8_runtime_keeps_residual_projections_in_float(family: str, tokenizer, trained) -> None:
    """8-bit models run on int8 kernels, but the family's attention output and FFN down
    projections (inputs with outliers) stay in float."""
    from occamtune.compress import to_int8_runtime

    model, _ = trained(family, "ner")
    small = compress(copy.deepcopy(model), [QuantizeConfig(bits=8)], context("ner", tokenizer))
    fast = to_int8_runtime(small)
    adapter = family_of_name(family)
    layer = adapter.get_layers(fast.encoder)[0]
    assert type(adapter.part(layer, "o")) is torch.nn.Linear
    assert type(adapter.part(layer, "down")) is torch.nn.Linear
    assert type(adapter.part(layer, "up")) is not torch.nn.Linear  # a dynamic int8 Linear
    batch = batches("ner", n=1)[0]
    torch.testing.assert_close(_logits(fast, batch), _logits(small, batch), atol=0.1, rtol=0.1)


@pytest.mark.parametrize("family", [f for f in RUNNABLE if family_of_name(f).kv_heads_field])
def test_gqa_prunes_whole_key_value_groups(family: str) -> None:
    """4 query heads over 2 key/value heads: removing half the heads removes one whole group,
    the query heads 2j, 2j + 1 with key/value head j."""
    model = build(family, "ner")
    adapter = family_of_name(family)
    layer = adapter.get_layers(model.encoder)[0]
    with torch.no_grad():  # make group 1 (query heads 2, 3) the strong one
        adapter.part(layer, "o").weight[:, 16:32] *= 10
    kept_k = adapter.part(layer, "k").weight[8:16].clone()
    kept_q = adapter.part(layer, "q").weight[16:32].clone()
    compress(model, [StructuredPruneConfig(heads=0.5, ffn=0.0, refit=False)], CompressContext())
    assert torch.equal(adapter.part(layer, "k").weight, kept_k)
    assert adapter.part(layer, "v").weight.shape == (8, 32)
    assert torch.equal(adapter.part(layer, "q").weight, kept_q)
    assert adapter.part(layer, "o").weight.shape == (32, 16)
    assert model(**batches("ner", n=1)[0]).shape == (4, 12, len(NER_LABELS))


def test_gpt2_fused_projection_sliced_per_head() -> None:
    """GPT-2's c_attn (a Conv1D, weight (in, out)) holds [q | k | v]: pruning to head 1 keeps
    head 1's rows of each third, in the nn.Linear that replaces it."""
    model = build("gpt2", "ner")
    att = model.encoder.h[0].attn
    with torch.no_grad():
        att.c_proj.weight[8:16] *= 10  # Conv1D rows are inputs: head 1 is the strong one
    rows = torch.cat([torch.arange(8, 16) + 32 * part for part in range(3)])
    kept = att.c_attn.weight.detach().T[rows].clone()  # (24, 32)
    small = compress(model, [StructuredPruneConfig(heads=0.75, ffn=0.0, refit=False)],
                     CompressContext())
    att = small.encoder.h[0].attn
    assert isinstance(att.c_attn, torch.nn.Linear) and torch.equal(att.c_attn.weight, kept)
    assert att.split_size == 8 and att.c_proj.weight.shape == (32, 8)
    assert small(**batches("ner", n=1)[0]).shape == (4, 12, len(NER_LABELS))


def test_t5_layers_keep_the_same_heads_and_their_bias_columns() -> None:
    """T5's first layer computes one relative position bias (a column per head) that every
    layer adds: structured pruning keeps the same heads in every layer and cuts the table's
    columns with them."""
    model = build("t5", "ner")
    adapter = family_of_name("t5")
    layers = adapter.get_layers(model.encoder)
    with torch.no_grad():  # heads 1 and 3 strong in layer 0, head 0 in layer 1: 1 and 3 win
        adapter.part(layers[0], "o").weight[:, 8:16] *= 10
        adapter.part(layers[0], "o").weight[:, 24:32] *= 10
        adapter.part(layers[1], "o").weight[:, 0:8] *= 3
    table = get_path(layers[0], adapter.position_bias).weight.detach().clone()  # (32, 4)
    compress(model, [StructuredPruneConfig(heads=0.5, ffn=0.0, refit=False)], CompressContext())
    assert [adapter.heads_of(model.encoder, layer) for layer in layers] == [2, 2]
    assert torch.equal(get_path(layers[0], adapter.position_bias).weight, table[:, [1, 3]])
    assert model(**batches("ner", n=1)[0]).shape == (4, 12, len(NER_LABELS))


def test_t5_student_takes_the_position_bias() -> None:
    """A T5 student without layer 0 gets layer 0's position-bias table in its first layer, the
    layout a fresh stack of its depth has (so that the saved student reloads)."""
    from transformers import AutoModel

    from occamtune.compress.distill import make_student

    model = build("t5", "ner")
    adapter = family_of_name("t5")
    table = get_path(adapter.get_layers(model.encoder)[0], adapter.position_bias)
    student = make_student(model, [1])
    first = adapter.get_layers(student.encoder)[0]
    assert torch.equal(get_path(first, adapter.position_bias).weight, table.weight)
    assert get_path(first, adapter.attention).has_relative_attention_bias
    fresh = encoder_from_config(AutoModel, copy.deepcopy(student.encoder.config))
    assert set(fresh.state_dict()) == set(student.encoder.state_dict())


def test_bart_positions_trimmed_past_their_offset(tokenizer) -> None:
    """BART's learned positions start 2 rows in: trimming keeps max_length + 2 rows in BART's
    own table (which adds the offset) and a config that rebuilds it at that size."""
    from occamtune.models import max_positions

    model = build("bart", "ner")
    before = _logits(model, batches("ner", n=1)[0])
    small = compress(model, [VocabTrimConfig(positions=True)], context("ner", tokenizer))
    table = small.encoder.embed_positions
    assert type(table).__name__ == "BartLearnedPositionalEmbedding"
    assert table.weight.shape[0] == MAX_LENGTH + 2 and max_positions(small) == MAX_LENGTH
    assert small.encoder.config.max_position_embeddings == MAX_LENGTH
    torch.testing.assert_close(_logits(small, batches("ner", n=1)[0]), before)


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
def test_distill_renumbers_layers(family: str) -> None:
    """The student's layers carry their new cache index, and per-layer config lists follow."""
    from occamtune.compress.distill import make_student

    model = build(family, "ner")
    adapter = family_of_name(family)
    if hasattr(model.encoder.config, "layer_types"):
        model.encoder.config.layer_types = ["full_attention", "sliding_attention"]
    student = make_student(model, [1])
    layer = adapter.get_layers(student.encoder)[0]
    assert [m.layer_idx for m in layer.modules() if hasattr(m, "layer_idx")] != []
    assert all(m.layer_idx == 0 for m in layer.modules() if hasattr(m, "layer_idx"))
    assert student.encoder.config.num_hidden_layers == 1
    if hasattr(student.encoder.config, "layer_types"):
        assert student.encoder.config.layer_types == ["sliding_attention"]


@pytest.mark.parametrize("family", ["albert", "llama"])
def test_search_proposes_students_the_family_can_make(family: str) -> None:
    """The shrink search offers no student where the family cannot drop layers (ALBERT), and
    only depths below the teacher's elsewhere (2 layers: a 1-layer student, not in the grid)."""
    from occamtune.search.space import SearchSpace
    from occamtune.search.trial import Teacher

    teacher = Teacher(Path("."), build(family, "ner"), None, None, None, {}, None, 0, "f1")
    space = SearchSpace(distill_layers=(0, 3, 1)).for_teacher(teacher.num_layers)
    assert space.distill_layers == ((0,) if family == "albert" else (0, 1))


@pytest.mark.parametrize("family", list(CONFIGS))
def test_adapter_paths_resolve(family: str) -> None:
    """Every path of the adapter names a module of the family's model (of the encoder-decoders'
    encoder stacks)."""
    from transformers import AutoModel
    from transformers.pytorch_utils import Conv1D

    encoder = encoder_from_config(AutoModel, CONFIGS[family]())
    adapter = family_of_name(family)
    layers = adapter.get_layers(encoder)
    assert len(layers) == (1 if adapter.shared_layers else 2)
    for layer in layers:
        for role in ("q", "k", "v", "o", "up", "down", "gate"):
            module = adapter.part(layer, role)
            assert module is not None or role == "gate", f"{family}: no {role} at {getattr(adapter, role)}"
            assert module is None or isinstance(module, (torch.nn.Linear, Conv1D)), (family, role)
        assert get_path(layer, adapter.attention) is not None
        for name in (*adapter.head_attrs, *adapter.width_attrs):
            assert hasattr(get_path(layer, adapter.attention), name), f"{family}: no attribute {name}"
        assert all(get_path(layer, p) is not None for p in adapter.norms), family
        assert adapter.heads_of(encoder, layer) == 4
    assert all(get_path(encoder, p) is not None for p in adapter.final_norms), family
    assert isinstance(adapter.get_word_embeddings(encoder), torch.nn.Embedding)
    pos = adapter.get_position_embeddings(encoder)
    assert pos is None or isinstance(pos, torch.nn.Embedding)
    config = encoder.config
    for name in (adapter.heads_field, adapter.layers_field, adapter.ffn_field):
        assert getattr(config, name, None) is not None, f"{family}: config has no {name}"
    assert adapter.group_size(config) == (2 if adapter.kv_heads_field else 1)
    assert not adapter.tied_output(encoder)


def test_every_method_has_a_case() -> None:
    assert set(CASES) == set(METHODS), f"add a family case for {set(METHODS) ^ set(CASES)}"


def test_every_family_has_a_tiny_model() -> None:
    adapters = {a.name for a in FAMILIES.values()}
    built = {family_of_name(f).name for f in CONFIGS}
    assert adapters == built, f"build a tiny model of {adapters - built}"


@pytest.mark.parametrize("family", ENCODER_DECODERS)
def test_encoder_decoders_run_their_encoder_stack(family: str) -> None:
    """A task model runs an encoder-decoder's encoder stack alone (what `load_encoder` and a
    saved run give); the whole model, as `AutoModel` gives it, is refused with what to use."""
    from transformers import AutoModel

    whole = AutoModel.from_config(CONFIGS[family]())
    with pytest.raises(ModelError, match="is not the encoder stack the tasks run on.*get_encoder"):
        TaskModel(whole, HeadConfig("ner", NER_LABELS))
    model = build(family, "ner")
    assert type(model.encoder) is type(whole.get_encoder())
    assert model.head_config.pooling == "mean"
    assert model(**batches("ner", n=1)[0]).shape == (4, 12, len(NER_LABELS))


@pytest.mark.parametrize("family", [f for f in RUNNABLE if family_of_name(f).decoder])
def test_decoders_refuse_first_token_pooling(family: str) -> None:
    from transformers import AutoModel

    head = HeadConfig(task="classify", labels=CLASS_LABELS, pooling="cls")
    with pytest.raises(ModelError, match="use model.pooling=mean"):
        TaskModel(encoder_from_config(AutoModel, CONFIGS[family]()), head)


def test_decoder_mean_pooling_ignores_padding() -> None:
    """A decoder's classification reads the mean over real tokens: padding changes nothing."""
    model = build("llama", "classify")
    batch = batches("classify", n=1)[0]
    short = {k: v[1:2, :9] for k, v in batch.items() if k != "labels"}
    padded = {k: v[1:2] for k, v in batch.items() if k != "labels"}
    torch.testing.assert_close(_logits(model, padded), _logits(model, short), atol=1e-5, rtol=1e-5)


UNKNOWN_OK = ("prune", "quantize", "lowrank", "feature")


def _unknown_model() -> TaskModel:
    """A family without an adapter (MPNet)."""
    from transformers import AutoModel, MPNetConfig

    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    return TaskModel(encoder_from_config(AutoModel, config), HeadConfig("ner", NER_LABELS)).eval()


@pytest.mark.parametrize("method", UNKNOWN_OK)
def test_unknown_family_layout_free_methods(method: str, tokenizer, tmp_path) -> None:
    model = _unknown_model()
    batch = batches("ner", n=1)[0]
    small = compress(model, [CASES[method]], context("ner", tokenizer))
    after = _logits(small, batch)
    save_artifact(small, tokenizer, tmp_path)
    tol = 1e-5 if method == "quantize" else 2e-3
    torch.testing.assert_close(_logits(load_artifact(tmp_path), batch), after, atol=tol, rtol=tol)


UNKNOWN_REFUSED = {**{m: CASES[m] for m in ("structured", "distill", "vocab", "codebook", "share",
                                            "lora")},
                   "quantize(ffn_bits)": QuantizeConfig(bits=4, ffn_bits=3)}


@pytest.mark.parametrize("method", sorted(UNKNOWN_REFUSED))
def test_unknown_family_refuses_layout_methods(method: str, tokenizer) -> None:
    name = method.partition("(")[0]
    with pytest.raises(ModelError, match=f"^{name}.*: model type 'mpnet' has no layout adapter.*"
                                         "supported: .*bert.*llama"):
        compress(_unknown_model(), [UNKNOWN_REFUSED[method]], context("ner", tokenizer))


# --- the support table of docs/families.md ------------------------------------------------------

BEGIN, END = "<!-- families: begin", "<!-- families: end -->"


def render_table() -> str:
    """The Markdown table: one row per family, one column per method."""
    methods = sorted(METHODS)
    lines = ["| family | model types | " + " | ".join(f"`{m}`" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    seen = []
    for adapter in FAMILIES.values():
        if adapter in seen:
            continue
        seen.append(adapter)
        cells = ["no (1)" if m in adapter.refuses else "yes" for m in methods]
        types = ", ".join(f"`{t}`" for t in adapter.model_types)
        lines.append(f"| {adapter.name} | {types} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _docs_block(text: str) -> str:
    start = text.index(BEGIN)
    start = text.index("\n", start) + 1
    return text[start:text.index(END)].strip()


def test_docs_table_is_current() -> None:
    assert _docs_block(DOCS.read_text(encoding="utf-8")) == render_table(), (
        "docs/families.md is out of date: PYTHONPATH=src python -m tests.unit.compress.test_families")


def write_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("\n", text.index(BEGIN)) + 1
    DOCS.write_text(text[:start] + render_table() + "\n" + text[text.index(END):], encoding="utf-8")


if __name__ == "__main__":
    write_docs()
