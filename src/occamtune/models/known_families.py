"""The model families occamtune knows, registered by `config.model_type` (`families.py` says
what an adapter is). `occamtune.models` imports this module, so they are registered before any
model is loaded; a new family is one more `register_family` call here or in user code.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from occamtune.models.families import FamilyAdapter, register_family

# Encoder-decoders: the tasks run the encoder stack alone, the module `get_encoder()` returns
# (T5Stack, BartEncoder), rather than T5EncoderModel or an encoder-only wrapper around BART's:
# those keep the word embedding twice, as `shared` and as the stack's `embed_tokens` (one tied
# tensor under two names, which the layout methods would have to swap together and
# safetensors refuses to save), while the stack holds it once. Each stack is a
# PreTrainedModel with its config: rebuilt from a run's config.json here, its weights read
# from the run's safetensors.


def _t5_stack(config: Any) -> nn.Module:
    """T5's encoder stack, configured as T5EncoderModel configures it (no decoder, no cache)."""
    import copy

    from transformers.models.t5.modeling_t5 import T5Stack

    config = copy.deepcopy(config)
    config.is_decoder, config.use_cache, config.is_encoder_decoder = False, False, False
    return T5Stack(config)


def _bart_encoder(config: Any) -> nn.Module:
    from transformers.models.bart.modeling_bart import BartEncoder

    return BartEncoder(config)


_BERT_LIKE = {
    "layers": "encoder.layer", "q": "attention.self.query", "k": "attention.self.key",
    "v": "attention.self.value", "o": "attention.output.dense", "up": "intermediate.dense",
    "down": "output.dense", "attention": "attention.self",
    "head_attrs": ("num_attention_heads",), "width_attrs": ("all_head_size",),
    "word_embeddings": "embeddings.word_embeddings",
    "position_embeddings": "embeddings.position_embeddings",
    "norms": ("attention.output.LayerNorm", "output.LayerNorm"), "final_norms": ("embeddings.LayerNorm",),
}
_LLAMA_LIKE = {
    "layers": "layers", "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "o": "self_attn.o_proj", "up": "mlp.up_proj", "gate": "mlp.gate_proj", "down": "mlp.down_proj",
    "attention": "self_attn", "word_embeddings": "embed_tokens",
    "norms": ("input_layernorm", "post_attention_layernorm"), "final_norms": ("norm",),
    "kv_heads_field": "num_key_value_heads", "head_dim_field": "head_dim",
    "per_layer_fields": ("layer_types",),
}

BERT = register_family(FamilyAdapter(
    name="bert", model_types=("bert", "roberta", "xlm-roberta", "electra", "camembert"),
    **_BERT_LIKE))
DISTILBERT = register_family(FamilyAdapter(
    name="distilbert", model_types=("distilbert",), layers="transformer.layer",
    q="attention.q_lin", k="attention.k_lin", v="attention.v_lin", o="attention.out_lin",
    up="ffn.lin1", down="ffn.lin2", attention="attention", head_attrs=("n_heads",),
    word_embeddings="embeddings.word_embeddings",
    position_embeddings="embeddings.position_embeddings",
    norms=("sa_layer_norm", "output_layer_norm"), final_norms=("embeddings.LayerNorm",),
    heads_field="n_heads", layers_field="n_layers", ffn_field="hidden_dim"))
DEBERTA_V2 = register_family(FamilyAdapter(
    name="deberta-v2", model_types=("deberta-v2",), layers="encoder.layer",
    q="attention.self.query_proj", k="attention.self.key_proj", v="attention.self.value_proj",
    o="attention.output.dense", up="intermediate.dense", down="output.dense",
    attention="attention.self", head_attrs=("num_attention_heads",),
    width_attrs=("all_head_size",),
    head_rows=("attention.self.pos_key_proj", "attention.self.pos_query_proj"),
    word_embeddings="embeddings.word_embeddings",
    position_embeddings="embeddings.position_embeddings",  # only with position_biased_input
    norms=("attention.output.LayerNorm", "output.LayerNorm"),
    final_norms=("embeddings.LayerNorm", "encoder.LayerNorm"), head_dim_field="attention_head_size"))
ALBERT = register_family(FamilyAdapter(
    name="albert", model_types=("albert",), layers="encoder.albert_layer_groups",
    q="attention.query", k="attention.key", v="attention.value", o="attention.dense",
    up="ffn", down="ffn_output", attention="attention", head_attrs=("num_attention_heads",),
    width_attrs=("all_head_size",), word_embeddings="embeddings.word_embeddings",
    position_embeddings="embeddings.position_embeddings",
    norms=("attention.LayerNorm", "full_layer_layer_norm"), final_norms=("embeddings.LayerNorm",),
    group_layers="albert_layers",
    refuses={
        "distill": "ALBERT runs one shared layer num_hidden_layers times; a student with fewer "
                   "passes saves time but not one byte. Pruning the shared layer (structured) "
                   "cuts every pass at once",
        "share": "ALBERT's layers are shared already",
    }))
LLAMA = register_family(FamilyAdapter(name="llama", model_types=("llama",), **_LLAMA_LIKE))
MISTRAL = register_family(FamilyAdapter(name="mistral", model_types=("mistral",), **_LLAMA_LIKE))
QWEN2 = register_family(FamilyAdapter(name="qwen2", model_types=("qwen2",), **_LLAMA_LIKE))
GEMMA3 = register_family(FamilyAdapter(
    name="gemma3_text", model_types=("gemma3_text",),
    **{**_LLAMA_LIKE, "norms": ("input_layernorm", "post_attention_layernorm",
                                "pre_feedforward_layernorm", "post_feedforward_layernorm",
                                "self_attn.q_norm", "self_attn.k_norm")}))
GPT2 = register_family(FamilyAdapter(
    name="gpt2", model_types=("gpt2",), layers="h", q="attn.c_attn", k="attn.c_attn",
    v="attn.c_attn", o="attn.c_proj", up="mlp.c_fc", down="mlp.c_proj", attention="attn",
    head_attrs=("num_heads",), width_attrs=("split_size",), word_embeddings="wte",
    position_embeddings="wpe", norms=("ln_1", "ln_2"), final_norms=("ln_f",),
    layers_field="n_layer", heads_field="n_head", ffn_field="n_inner", conv1d=True))
_T5_LIKE = {
    "model_types": ("t5",), "layers": "block", "q": "layer.0.SelfAttention.q",
    "k": "layer.0.SelfAttention.k", "v": "layer.0.SelfAttention.v",
    "o": "layer.0.SelfAttention.o", "down": "layer.1.DenseReluDense.wo",
    "attention": "layer.0.SelfAttention", "head_attrs": ("n_heads",),
    "width_attrs": ("inner_dim",), "word_embeddings": "embed_tokens",
    "norms": ("layer.0.layer_norm", "layer.1.layer_norm"), "final_norms": ("final_layer_norm",),
    "heads_field": "num_heads", "layers_field": "num_layers", "ffn_field": "d_ff",
    "head_dim_field": "d_kv", "encoder_stack": _t5_stack,
    "position_bias": "layer.0.SelfAttention.relative_attention_bias",
    "position_bias_flag": "has_relative_attention_bias",
}
# T5's decoder layer: self-attention (layer.0), cross-attention (layer.1), feed-forward (layer.2)
_T5_DECODER = {**_T5_LIKE, "down": "layer.2.DenseReluDense.wo",
               "norms": ("layer.0.layer_norm", "layer.1.layer_norm", "layer.2.layer_norm"),
               "top_layers_field": "num_decoder_layers"}
_T5_GATED = {"up": "layer.1.DenseReluDense.wi_1", "gate": "layer.1.DenseReluDense.wi_0"}
T5 = register_family(FamilyAdapter(
    name="t5", up="layer.1.DenseReluDense.wi", top_layers_field="num_layers", **_T5_LIKE,
    decoder_layout=FamilyAdapter(name="t5-decoder", up="layer.2.DenseReluDense.wi", **_T5_DECODER),
    # T5 v1.1, Flan-T5: act(wi_0 x) * wi_1 x, the gate through the activation
    variant=("is_gated_act", FamilyAdapter(
        name="t5", **_T5_GATED, top_layers_field="num_layers", **_T5_LIKE,
        decoder_layout=FamilyAdapter(
            name="t5-decoder", **{k: v.replace("layer.1.", "layer.2.") for k, v in _T5_GATED.items()},
            **_T5_DECODER)))))
_BART_LIKE = {
    "model_types": ("bart",), "layers": "layers", "q": "self_attn.q_proj", "k": "self_attn.k_proj",
    "v": "self_attn.v_proj", "o": "self_attn.out_proj", "up": "fc1", "down": "fc2",
    "attention": "self_attn", "word_embeddings": "embed_tokens",
    "position_embeddings": "embed_positions", "final_norms": ("layernorm_embedding",),
}
BART = register_family(FamilyAdapter(
    name="bart", norms=("self_attn_layer_norm", "final_layer_norm"),
    heads_field="encoder_attention_heads", layers_field="encoder_layers",
    ffn_field="encoder_ffn_dim", encoder_stack=_bart_encoder, **_BART_LIKE,
    decoder_layout=FamilyAdapter(
        name="bart-decoder", norms=("self_attn_layer_norm", "encoder_attn_layer_norm",
                                    "final_layer_norm"),
        heads_field="decoder_attention_heads", layers_field="decoder_layers",
        ffn_field="decoder_ffn_dim", **_BART_LIKE)))
