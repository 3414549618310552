"""One adapter per model family: where a transformer keeps its layers, attention projections,
feed-forward block, embeddings and norms, and which config fields say how many of each.

Compression methods that touch a model's insides (structured pruning, layer dropping,
vocabulary trimming, per-block quantization widths...) ask `family_of(encoder)` instead of
following BERT's attribute paths, as peft's `target_modules` mappings and torchtune's model
builders do. Methods that only need "every nn.Linear" (unstructured pruning, k-bit
quantization, low-rank factorisation) work on any model, known family or not.

An adapter is registered for each `config.model_type` it covers (`register_family`); an unknown
type gets a `ModelError` naming the supported families, raised only when a method needs the
layout (`family_of`). Paths are dotted attribute paths: from the encoder (what `AutoModel`
returns, or for an encoder-decoder its encoder stack alone) to the layer list and the
embeddings, from one layer to its projections.

Why by hand: transformers 5 dropped the models' `prune_heads` and `find_pruneable_heads_and_
indices`; `transformers.pytorch_utils.prune_linear_layer` is still there and slices the Linears.
Which head counts each attention module keeps (BERT's `num_attention_heads`/`all_head_size`,
GPT-2's `split_size`...) is family knowledge, written down here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from occamtune.errors import ModelError


def is_decoder_only_type(model_type: str) -> bool:
    """Whether a `config.model_type` is a causal decoder with no masked-LM (bidirectional) form,
    as Llama and GPT-2 (BERT and RoBERTa have both forms and read in both directions): read
    from transformers' own auto mappings, the one place this is decided."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return (model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)

FAMILIES: dict[str, FamilyAdapter] = {}  # by config.model_type


def get_path(root: nn.Module, path: str) -> Any:
    """`root.a.b.c` for the path "a.b.c" ("" is root); None when an attribute is missing."""
    obj: Any = root
    for part in path.split(".") if path else ():
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def set_path(root: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, attr, value)


@dataclass(frozen=True)
class FamilyAdapter:
    """Where a family keeps its parts.

    Attributes:
        name: the family's name in messages and docs ("bert", "llama"...).
        model_types: the `config.model_type` values it covers.
        layers: path from the encoder to the nn.ModuleList of transformer layers.
        q, k, v, o: paths from a layer to the attention's query, key, value and output
            projections; a fused projection (GPT-2's c_attn: query, key and value side by side
            in its output rows) has q == k == v.
        up, down: paths from a layer to the feed-forward input (up) and output (down)
            projections; `gate` to the gated MLP's gate projection (None: no gate).
        attention: path from a layer to the module whose attributes hold the head count.
        head_attrs: attributes of `attention` set to the number of query heads after pruning.
        width_attrs: attributes of `attention` set to heads * head dim after pruning.
        head_rows: other projections (paths from a layer) with one block of rows per head
            (DeBERTa's unshared relative-position projections), sliced like the query.
        word_embeddings: path from the encoder to the input token embedding.
        position_embeddings: path to the absolute position embedding (None: rotary, relative
            or none).
        norms: paths from a layer to its norms; `final_norms` from the encoder.
        heads_field, kv_heads_field, layers_field, ffn_field: config fields of the query head
            count, the key/value head count (GQA; None: as many as query heads), the layer
            count and the feed-forward width. `keep_layers` updates the layer count; pruned heads
            and neurons differ from layer to layer, which one config field cannot say, so the
            config keeps the original counts and the artifact replays each layer's cut.
        per_layer_fields: config lists with one entry per layer (sliced with the layers).
        head_dim_field: config field of the head dim (None or missing: width / heads).
        conv1d: the projections are transformers' Conv1D (weight (in, out)); methods that
            slice or quantize them convert them to nn.Linear first (`conv1d_to_linear`).
        group_layers: for layers shared across passes (ALBERT), the path from each group of
            `layers` to its list of distinct layer modules, each run several times per forward
            ("": plain layers, each run once).
        encoder_stack: for an encoder-decoder (`AutoModel` gives both halves, and its output is
            the decoder's), builds the encoder stack alone from a config: the module the tasks
            run, which `load_encoder` takes out of the pretrained model (`get_encoder()`) and a
            saved run rebuilds; None for encoders and decoders, which `AutoModel` gives whole.
        position_bias: path from a layer to a table of relative position biases with one column
            per head (T5's `relative_attention_bias`, (buckets, heads)), held by the first layer
            alone, whose bias every layer adds: every layer must keep the same heads (their
            columns are cut with them), and a student's first layer takes the table.
            `position_bias_flag` is the attribute of `attention` saying that a layer holds it.
        variant: (config flag, adapter): the layout of the family's models whose config sets
            the flag (T5 v1.1 and Flan-T5: `is_gated_act`, a gated feed-forward).
        decoder_layout: for an encoder-decoder family, the layout of its decoder stack (the
            module `get_decoder()` returns), whose layers also hold a cross-attention; the
            methods cut its self-attention and feed-forward, the cross-attention stays whole.
        top_layers_field: the field of the whole encoder-decoder's config holding this stack's
            layer count, where the stack runs on a copy of that config (T5: the decoder's
            `num_layers` is the whole model's `num_decoder_layers`); None: the stack's config
            is the whole model's (BART) or its half's (`EncoderDecoderModel`).
        refuses: method name -> why that method cannot run on this family.
    """

    name: str
    model_types: tuple[str, ...]
    layers: str
    q: str
    k: str
    v: str
    o: str
    up: str
    down: str
    word_embeddings: str
    gate: str | None = None
    attention: str = ""
    head_attrs: tuple[str, ...] = ()
    width_attrs: tuple[str, ...] = ()
    head_rows: tuple[str, ...] = ()
    position_embeddings: str | None = None
    norms: tuple[str, ...] = ()
    final_norms: tuple[str, ...] = ()
    heads_field: str = "num_attention_heads"
    kv_heads_field: str | None = None
    layers_field: str = "num_hidden_layers"
    ffn_field: str = "intermediate_size"
    per_layer_fields: tuple[str, ...] = ()
    head_dim_field: str | None = None
    conv1d: bool = False
    group_layers: str = ""
    encoder_stack: Callable[[Any], nn.Module] | None = None
    position_bias: str | None = None
    position_bias_flag: str = ""
    variant: tuple[str, FamilyAdapter] | None = None
    decoder_layout: FamilyAdapter | None = None
    top_layers_field: str | None = None
    refuses: dict[str, str] = field(default_factory=dict)

    def for_config(self, config: Any) -> FamilyAdapter:
        """The adapter of a model of this family with `config` (its `variant` when it applies)."""
        if self.variant is not None and getattr(config, self.variant[0], False):
            return self.variant[1]
        return self

    @property
    def encoder_decoder(self) -> bool:
        """`AutoModel` gives an encoder-decoder; the tasks run its encoder stack."""
        return self.encoder_stack is not None

    @property
    def same_heads(self) -> bool:
        """Whether every layer must keep the same heads (one bias table read by all layers)."""
        return self.position_bias is not None

    @property
    def decoder(self) -> bool:
        """Causal attention: position 0 sees only itself (no sentence summary there)."""
        return any(is_decoder_only_type(kind) for kind in self.model_types)

    # --- layers -------------------------------------------------------------------------------

    @property
    def shared_layers(self) -> bool:
        """Whether the layers run several times per forward (ALBERT)."""
        return bool(self.group_layers)

    def get_layers(self, encoder: nn.Module) -> list[nn.Module]:
        """The transformer layers in order (ALBERT: the distinct shared layers)."""
        if self.shared_layers:
            groups = get_path(encoder, self.layers)
            return [layer for group in groups for layer in get_path(group, self.group_layers)]
        return list(get_path(encoder, self.layers))

    def layer_list(self, encoder: nn.Module) -> nn.ModuleList:
        """The nn.ModuleList holding the layers (to replace layers in place)."""
        if self.shared_layers:
            raise ModelError(self.refusal("share"))
        return get_path(encoder, self.layers)

    def keep_layers(self, encoder: nn.Module, keep: list[int]) -> None:
        """Keep only the layers `keep` (0-based, in order): the module list, the config's layer
        count and per-layer lists, and each layer's cache index (`layer_idx`, as transformers
        numbers them)."""
        if self.shared_layers:
            raise ModelError(self.refusal("distill"))
        old = self.get_layers(encoder)
        layers = [old[i] for i in keep]
        if self.position_bias and get_path(layers[0], self.position_bias) is None:
            # the first layer computes the position bias of all (T5): it takes layer 0's table
            set_path(layers[0], self.position_bias, get_path(old[0], self.position_bias))
            setattr(get_path(layers[0], self.attention), self.position_bias_flag, True)
        set_path(encoder, self.layers, nn.ModuleList(layers))
        config = encoder.config
        setattr(config, self.layers_field, len(layers))
        for name in self.per_layer_fields:
            values = getattr(config, name, None)
            if isinstance(values, (list, tuple)) and len(values) == len(old):
                setattr(config, name, [values[i] for i in keep])
        for j, layer in enumerate(layers):
            for module in layer.modules():
                if hasattr(module, "layer_idx"):
                    module.layer_idx = j

    # --- attention ----------------------------------------------------------------------------

    def head_dim(self, config: Any) -> int:
        dim = getattr(config, self.head_dim_field, None) if self.head_dim_field else None
        return int(dim or config.hidden_size // getattr(config, self.heads_field))

    def group_size(self, config: Any) -> int:
        """Query heads per key/value head (1 without GQA)."""
        heads = getattr(config, self.heads_field)
        kv = getattr(config, self.kv_heads_field, None) if self.kv_heads_field else None
        return heads // kv if kv else 1

    def heads_of(self, encoder: nn.Module, layer: nn.Module) -> int:
        """The number of query heads `layer` has now (after any pruning)."""
        return out_in_weight(self.part(layer, "o")).shape[1] // self.head_dim(encoder.config)

    def part(self, layer: nn.Module, role: str) -> Any:
        """A layer's projection by role: q, k, v, o, up, gate, down (None when absent)."""
        path = getattr(self, role)
        return get_path(layer, path) if path else None

    def set_part(self, layer: nn.Module, role: str, module: nn.Module) -> None:
        set_path(layer, getattr(self, role), module)

    def keep_heads(self, encoder: nn.Module, layer: nn.Module, keep: list[int]) -> torch.Tensor:
        """Cut `layer`'s attention down to the query heads `keep` (under GQA whole key/value
        groups: `keep` must hold every query head of a kept group); returns the kept input
        columns of the output projection."""
        from transformers.pytorch_utils import prune_linear_layer

        config = encoder.config
        d, r = self.head_dim(config), self.group_size(config)
        groups = sorted({h // r for h in keep})
        assert sorted(keep) == [g * r + j for g in groups for j in range(r)], \
            f"{self.name}: heads {keep} are not whole key/value groups of {r}"
        q_index = _blocks(sorted(keep), d)
        kv_index = _blocks(groups, d)
        if self.q == self.k == self.v:  # fused: rows [q | k | v], each as wide as the heads now
            width = self.heads_of(encoder, layer) * d
            index = torch.cat([q_index, kv_index + width, kv_index + 2 * width])
            self.set_part(layer, "q", prune_linear_layer(self.part(layer, "q"), index, 0))
        else:
            for role, index in (("q", q_index), ("k", kv_index), ("v", kv_index)):
                self.set_part(layer, role, prune_linear_layer(self.part(layer, role), index, 0))
        for path in self.head_rows:
            if get_path(layer, path) is not None:
                set_path(layer, path, prune_linear_layer(get_path(layer, path), q_index, 0))
        table = get_path(layer, self.position_bias) if self.position_bias else None
        if table is not None:  # (buckets, heads): the kept heads' columns
            set_path(layer, self.position_bias, _columns(table, sorted(keep)))
        self.set_part(layer, "o", prune_linear_layer(self.part(layer, "o"), q_index, 1))
        attention = get_path(layer, self.attention)
        for name in self.head_attrs:
            setattr(attention, name, len(keep))
        for name in self.width_attrs:
            setattr(attention, name, len(keep) * d)
        return q_index

    # --- feed-forward -------------------------------------------------------------------------

    def keep_neurons(self, layer: nn.Module, keep: torch.Tensor) -> None:
        """Cut the feed-forward block to the neurons `keep`: the same rows of up and gate, the
        same columns of down."""
        from transformers.pytorch_utils import prune_linear_layer

        for role in ("up", "gate"):
            if self.part(layer, role) is not None:
                self.set_part(layer, role, prune_linear_layer(self.part(layer, role), keep, 0))
        self.set_part(layer, "down", prune_linear_layer(self.part(layer, "down"), keep, 1))

    def ffn_linears(self, layer: nn.Module) -> list[nn.Module]:
        return [m for m in (self.part(layer, r) for r in ("up", "gate", "down")) if m is not None]

    # --- embeddings ---------------------------------------------------------------------------

    def get_word_embeddings(self, encoder: nn.Module) -> nn.Module:
        return get_path(encoder, self.word_embeddings)

    def set_word_embeddings(self, encoder: nn.Module, module: nn.Module) -> None:
        set_path(encoder, self.word_embeddings, module)

    def get_position_embeddings(self, encoder: nn.Module) -> nn.Module | None:
        return get_path(encoder, self.position_embeddings) if self.position_embeddings else None

    def set_position_embeddings(self, encoder: nn.Module, module: nn.Module) -> None:
        assert self.position_embeddings, f"{self.name} has no absolute position embedding"
        set_path(encoder, self.position_embeddings, module)

    def tied_output(self, encoder: nn.Module) -> bool:
        """Whether the model carries an output head tied to the word embeddings (the base
        models `AutoModel` gives carry none, whatever `tie_word_embeddings` says)."""
        out = encoder.get_output_embeddings() if hasattr(encoder, "get_output_embeddings") else None
        return out is not None and out.weight is self.get_word_embeddings(encoder).weight

    def get_norms(self, encoder: nn.Module) -> list[nn.Module]:
        found = [get_path(layer, p) for layer in self.get_layers(encoder) for p in self.norms]
        found += [get_path(encoder, p) for p in self.final_norms]
        return [m for m in found if m is not None]

    # --- refusals -----------------------------------------------------------------------------

    def refusal(self, method: str) -> str:
        return f"{method}: not supported for the {self.name} family: {self.refuses[method]}"

    def check(self, method: str) -> None:
        """A ModelError when `method` cannot run on this family."""
        if method in self.refuses:
            raise ModelError(self.refusal(method))


def out_in_weight(module: nn.Module) -> torch.Tensor:
    """A projection's weight as (out, in): nn.Linear's own, the transpose of a Conv1D's."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.T


def _blocks(heads: list[int], d: int) -> torch.Tensor:
    """The rows [h d, (h + 1) d) of each head h, in order."""
    return torch.cat([torch.arange(h * d, (h + 1) * d) for h in heads]).long()


def _columns(table: nn.Embedding, keep: list[int]) -> nn.Embedding:
    """A new Embedding of the columns `keep` of `table` (its rows unchanged)."""
    new = nn.Embedding(table.num_embeddings, len(keep))
    with torch.no_grad():
        new.weight.copy_(table.weight[:, keep])
    return new


def register_family(adapter: FamilyAdapter) -> FamilyAdapter:
    for model_type in adapter.model_types:
        FAMILIES[model_type] = adapter
    return adapter


def supported_types() -> list[str]:
    return sorted(FAMILIES)


def model_type_of(model: nn.Module) -> str:
    config = getattr(model, "config", None) or getattr(getattr(model, "encoder", None), "config", None)
    return str(getattr(config, "model_type", "") or type(model).__name__)


def is_whole_seq2seq(module: nn.Module) -> bool:
    """A whole encoder-decoder (encoder, decoder and output layer: the generate task's T5, BART
    or warm-started `EncoderDecoderModel`), not the encoder stack the other tasks run on."""
    config = getattr(module, "config", None)
    get_encoder = getattr(module, "get_encoder", None)
    return bool(getattr(config, "is_encoder_decoder", False)) and hasattr(module, "get_decoder") \
        and callable(get_encoder) and get_encoder() is not module


# The methods that read a whole encoder-decoder's layout, one stack of layers at a time
# (`stacks_of`); the others that need a layout describe one stack and refuse it.
STACKED = ("structured", "distill")


def family_of(model: nn.Module, method: str = "") -> FamilyAdapter:
    """The adapter of an encoder (or of a TaskModel's encoder), by `config.model_type`.

    Raises:
        ModelError: no adapter for the model type (the message names the supported ones and
            `method`, the method asking), the family refuses `method`, or the model is a whole
            encoder-decoder, which has two stacks of layers (`stacks_of`).
    """
    model_type = model_type_of(model)
    if is_whole_seq2seq(model) or is_whole_seq2seq(getattr(model, "encoder", model)):
        who = f"{method}: " if method else ""
        raise ModelError(f"{who}not supported on a whole encoder-decoder generator ({model_type}): "
                         "this method reads one stack of layers and its embeddings, and this "
                         "model has two, the decoder's with cross-attention; on it run "
                         f"{', '.join(STACKED)} (both read each stack), vocab (both halves' "
                         "embeddings and the output layer) and the methods that need no layout "
                         "(quantize, with nearest or GPTQ rounding; prune; lowrank)")
    adapter = find_family(model)
    if adapter is None:
        who = f"{method}: " if method else ""
        raise ModelError(f"{who}model type {model_type!r} has no layout adapter, so methods that "
                         f"reach into its layers cannot run on it; supported: "
                         f"{', '.join(supported_types())} (occamtune.models.families)")
    if method:
        adapter.check(method)
    return adapter


@dataclass(frozen=True)
class Stack:
    """One stack of transformer layers and the adapter that reads it: an encoder's or a
    decoder's only stack (key ""), or one half of a whole encoder-decoder ("encoder",
    "decoder").

    Attributes:
        key: names the stack in the artifact's replayed steps.
        module: the module the adapter's paths start from.
        family: its adapter.
        counts: the other configs that hold this stack's layer count, as (config, field): a
            whole encoder-decoder's config, or its half's, where the stack runs on a copy (T5's
            `num_decoder_layers`, `FamilyAdapter.top_layers_field`).
        mask: the batch entry marking this stack's real positions (a decoder half reads the
            target: "decoder_attention_mask").
    """

    key: str
    module: nn.Module
    family: FamilyAdapter
    counts: tuple[tuple[Any, str], ...] = ()
    mask: str = "attention_mask"

    def layers(self) -> list[nn.Module]:
        return self.family.get_layers(self.module)

    def keep_layers(self, keep: list[int]) -> None:
        """`FamilyAdapter.keep_layers`, and the other configs' count of this stack's layers
        (those a saved model is rebuilt from)."""
        self.family.keep_layers(self.module, keep)
        for config, name in self.counts:
            setattr(config, name, len(keep))


def stacks_of(encoder: nn.Module, method: str = "") -> list[Stack]:
    """The stacks of layers of a task model's encoder: its one stack, or a whole
    encoder-decoder's encoder and decoder halves, in this order (the decoder's layers give the
    hidden states a generator's distillation matches).

    Raises:
        ModelError: as `family_of` for a half (or the model) with no adapter or refusing
            `method`; for halves that are one set of weights (`tie_encoder_decoder`).
    """
    if not is_whole_seq2seq(encoder):
        return [Stack("", encoder, family_of(encoder, method))]
    config, who = encoder.config, f"{method}: " if method else ""
    if getattr(config, "tie_encoder_decoder", False):
        raise ModelError(f"{who}the two halves of this encoder-decoder are one set of weights "
                         "(tie_encoder_decoder, the warm start's BERTShare): a cut in one half "
                         "would cut the other's layer at the same place, which reads other "
                         "inputs; the methods that need no layout run on it (quantize, prune, "
                         "lowrank)")
    halves = [encoder.get_encoder(), encoder.get_decoder()]
    if config.model_type == "encoder-decoder":  # warm-started: each half a model of its family
        # the decoder's base model (BertLMHeadModel's BertModel) may keep a config of its own
        lm, halves[1] = halves[1], halves[1].base_model
        families = [family_of(half, method) for half in halves]
        holders = [(config.encoder,), (config.decoder, lm.config)]
        counts = [tuple((c, f.layers_field) for c in cs) for cs, f in zip(holders, families)]
    else:
        adapter = FAMILIES.get(config.model_type)
        adapter = adapter.for_config(config) if adapter is not None else None
        if adapter is None or adapter.decoder_layout is None:
            raise ModelError(f"{who}the encoder-decoder type {config.model_type!r} has no layout "
                             "adapter for its decoder; known: " + ", ".join(
                                 sorted(t for t, a in FAMILIES.items() if a.decoder_layout)))
        families = [adapter, adapter.decoder_layout]
        counts = [((config, f.top_layers_field),) if f.top_layers_field else () for f in families]
        if method:
            for family in families:
                family.check(method)
    return [Stack("encoder", halves[0], families[0], counts[0]),
            Stack("decoder", halves[1], families[1], counts[1], "decoder_attention_mask")]


def find_stack(encoder: nn.Module, key: str) -> Stack:
    """The stack `key` of `stacks_of(encoder)` (an artifact's replayed step names it)."""
    found = [s for s in stacks_of(encoder) if s.key == key]
    if not found:
        raise ModelError(f"the model has no stack of layers {key!r}: the artifact's steps were "
                         f"recorded on another architecture ({model_type_of(encoder)})")
    return found[0]


def seq2seq_decoder(model: nn.Module) -> nn.Module | None:
    """The decoder half of a whole encoder-decoder (a TaskModel's encoder, or the model), else
    None."""
    for m in (model, getattr(model, "encoder", None)):
        if m is not None and is_whole_seq2seq(m):
            return m.get_decoder()
    return None


def find_family(model: nn.Module) -> FamilyAdapter | None:
    """The adapter of a model, or None for an unknown model type or a whole encoder-decoder
    (an adapter describes one stack of layers)."""
    if is_whole_seq2seq(model) or is_whole_seq2seq(getattr(model, "encoder", None)):
        return None
    adapter = FAMILIES.get(model_type_of(model))
    config = getattr(model, "config", None) or getattr(getattr(model, "encoder", None), "config", None)
    return adapter.for_config(config) if adapter is not None else None


def conv1d_to_linear(root: nn.Module) -> list[str]:
    """Replace every transformers Conv1D under `root` by the nn.Linear computing the same
    function (Conv1D keeps its weight as (in, out), Linear as (out, in)); returns their names.

    Why: the slicing, quantization and factorisation code all speak nn.Linear; GPT-2's forward
    only calls the modules, so a Linear does the same there.
    """
    from transformers.pytorch_utils import Conv1D

    names = [n for n, m in root.named_modules() if isinstance(m, Conv1D)]
    for name in names:
        conv = root.get_submodule(name)
        set_path(root, name, linear_of_conv1d(conv))
    return names


def linear_of_conv1d(conv: nn.Module) -> nn.Linear:
    n_in, n_out = conv.weight.shape  # (in, out)
    linear = nn.Linear(n_in, n_out, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.detach().T)
        if conv.bias is not None:
            linear.bias.copy_(conv.bias.detach())
    return linear


def check_encoder(encoder: nn.Module) -> None:
    """A ModelError for a model the tasks cannot run on: a whole encoder-decoder (as `AutoModel`
    gives it) rather than its encoder stack."""
    adapter = FAMILIES.get(model_type_of(encoder))  # find_family has none for a whole one
    if adapter is not None and adapter.encoder_decoder and get_path(encoder, adapter.layers) is None:
        raise ModelError(
            f"model type {adapter.model_types[0]!r}: {type(encoder).__name__} is not the encoder "
            f"stack the tasks run on (its `{adapter.layers}` layers): an encoder-decoder's output "
            "is the decoder's, and the tasks need the encoder's token states. Use "
            "`occamtune.models.load_encoder(name)`, or the model's `get_encoder()`.")
