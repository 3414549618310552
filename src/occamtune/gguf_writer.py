"""A Llama-family text generator as one GGUF file, for llama.cpp (`occamtune export --gguf`).

The file is laid out as llama.cpp's own converter (`convert_hf_to_gguf.py`) lays out a Hugging
Face Llama: its tensor names, the row order of the query and key projections that its rotary
kernels expect, the model's sizes and the tokenizer (byte-level BPE: tokens, merges, special
ids, chat template) as metadata. The weights are quantized by the `gguf` package's own codecs
(the quantizations it implements: Q8_0, Q4_0, Q4_1; the K-quants only llama.cpp's C code
writes), with llama.cpp's conventions: norms stay float32, the word embeddings take Q8_0 when
the rest takes 4 bits, as in the packaged SmolLM2 Q4_1 file. The converter itself is a script
inside llama.cpp's repository, not an installable library, hence this module.

What it writes is the fine-tuned generator as transformers would hold it: a run, or an artifact
whose layers keep the uniform shapes llama.cpp needs (a distilled student: fewer layers). A
trimmed vocabulary, pruned heads or neurons (layers of different widths), codebook embeddings
or cross-layer sharing have no GGUF form and are refused with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from occamtune.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import numpy as np

QTYPES = ("f32", "f16", "q8_0", "q4_0", "q4_1")  # what `--gguf` writes
FAMILIES = ("llama", "mistral")  # written as llama.cpp's "llama" architecture
_LAYER = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
          "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
          "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order of a query / key projection: within each head, the two rotary
    halves of transformers' layout interleaved (transformers undoes this when it reads a GGUF)."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(config: Any, weights: dict[str, np.ndarray],
                 output: np.ndarray | None) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array for a transformers `LlamaModel`'s state (`weights`, keys as
    `LlamaModel.state_dict()` gives them) and an untied output layer (`output`; None: tied)."""
    import numpy as np

    unknown = sorted(k for k in weights if k not in ("embed_tokens.weight", "norm.weight")
                     and not _layer_key(k))
    if unknown:
        raise ModelError(f"no GGUF name for {', '.join(unknown[:4])}: the model has modules a "
                         "Llama does not (a compression step that has no GGUF form)")
    out = {}
    for key, value in weights.items():
        value = np.ascontiguousarray(value, dtype=np.float32)
        if key == "embed_tokens.weight":
            out["token_embd.weight"] = value
        elif key == "norm.weight":
            out["output_norm.weight"] = value
        else:
            layer, module, kind = _layer_key(key)  # type: ignore[misc]
            if module == "self_attn.q_proj":
                value = permute_rotary(value, config.num_attention_heads)
            elif module == "self_attn.k_proj":
                value = permute_rotary(value, config.num_key_value_heads)
            out[f"blk.{layer}.{_LAYER[module]}.{kind}"] = value
    if output is not None:
        out["output.weight"] = np.ascontiguousarray(output, dtype=np.float32)
    return out


def _head_dim(config: Any) -> int:
    """The size of one attention head (a config may give it apart from hidden / heads)."""
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def _layer_key(key: str) -> tuple[str, str, str] | None:
    parts = key.split(".")
    if len(parts) < 4 or parts[0] != "layers":
        return None
    module, kind = ".".join(parts[2:-1]), parts[-1]
    return (parts[1], module, kind) if module in _LAYER and kind == "weight" else None


def _tensor_type(name: str, value: np.ndarray, qtype: str) -> Any:
    """The GGML type a tensor is written in: float32 for vectors (norms) and for rows a block
    code does not divide; the word embeddings and output layer Q8_0 under a 4-bit qtype."""
    import gguf

    t = gguf.GGMLQuantizationType
    if value.ndim < 2 or qtype == "f32":
        return t.F32
    if qtype == "f16":
        return t.F16
    chosen = {"q8_0": t.Q8_0, "q4_0": t.Q4_0, "q4_1": t.Q4_1}[qtype]
    if name in ("token_embd.weight", "output.weight") and qtype.startswith("q4"):
        chosen = t.Q8_0
    block, _ = gguf.GGML_QUANT_SIZES[chosen]
    return chosen if value.shape[-1] % block == 0 else t.F32


def tokenizer_metadata(tokenizer: Any, vocab_size: int) -> dict[str, Any]:
    """The GGUF tokenizer fields of a byte-level BPE fast tokenizer (GPT-2, SmolLM2, Llama 3,
    Qwen2 style): tokens by id (padded to the model's `vocab_size` as unused), their types,
    the merges and the special ids."""
    import gguf

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    model = state.get("model") or {}
    if model.get("type") != "BPE":
        raise ModelError(f"GGUF export writes byte-level BPE tokenizers; this one is "
                         f"{model.get('type')!r} (a SentencePiece tokenizer has no writer here)")
    vocab = dict(model["vocab"])
    special = {a["content"] for a in state.get("added_tokens", []) if a.get("special")}
    for added in state.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    by_id = {i: t for t, i in vocab.items()}
    if max(by_id) >= vocab_size:
        raise ModelError(f"the tokenizer has id {max(by_id)} but the model only {vocab_size} "
                         "embedding rows")
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # rows no token uses (a vocabulary padded to a multiple)
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    first = tokenizer("a", add_special_tokens=True)["input_ids"]
    ids = {name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "unk", "pad")}
    return {"tokens": tokens, "types": types, "merges": merges, "ids": ids,
            "add_bos": bool(first) and first[0] == ids["bos"] and ids["bos"] is not None,
            "chat_template": getattr(tokenizer, "chat_template", None)}


def write_gguf(path: str | Path, config: Any, weights: dict[str, np.ndarray],
               output: np.ndarray | None, tokenizer: Any, qtype: str = "q4_1",
               name: str = "occamtune", pre: str | None = None) -> dict[str, Any]:
    """Write a Llama (`config`, its `LlamaModel` state `weights`, an untied `output` layer or
    None) with its byte-level BPE `tokenizer` as one GGUF file; `pre`: llama.cpp's pre-tokenizer
    name (`tokenizer.ggml.pre`: copied from the GGUF the model came from; None: llama.cpp's
    default). Returns what was written: bytes, tensors per GGML type."""
    import gguf
    import numpy as np

    if qtype not in QTYPES:
        raise ConfigError(f"--gguf must be one of {', '.join(QTYPES)}, got {qtype!r}")
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default":
        raise ModelError(f"GGUF export writes Llamas with plain rotary positions; this one "
                         f"scales them ({rope_type!r})")
    theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    head_dim = _head_dim(config)
    tensors = gguf_tensors(config, weights, output)
    meta = tokenizer_metadata(tokenizer, int(config.vocab_size))
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads))
    writer.add_rope_dimension_count(head_dim)
    if head_dim * config.num_attention_heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                          "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
                          "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}[qtype])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre or "default")
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    writer.add_token_merges(meta["merges"])
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id,
              "unk": writer.add_unk_token_id, "pad": writer.add_pad_token_id}
    for field, token_id in meta["ids"].items():
        if token_id is not None:
            adders[field](int(token_id))
    writer.add_add_bos_token(meta["add_bos"])
    if meta["chat_template"]:
        writer.add_chat_template(meta["chat_template"])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    counts: dict[str, int] = {}
    for tensor_name, value in tensors.items():
        kind = _tensor_type(tensor_name, value, qtype)
        counts[kind.name] = counts.get(kind.name, 0) + 1
        if kind == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(tensor_name, value)
        elif kind == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(tensor_name, value.astype(np.float16))
        else:
            # (the shape given is the bytes' shape: the writer derives the element shape)
            writer.add_tensor(tensor_name, gguf.quants.quantize(value, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"bytes": path.stat().st_size, "tensor_types": counts, "qtype": qtype,
            "tied": output is None}


def export_gguf_run(folder: str | Path, output: str | Path, qtype: str = "q4_1",
                    overwrite: bool = False) -> dict[str, Any]:
    """Write the text generator of a run or artifact folder as the GGUF file `output` (a path
    ending in `.gguf`), its weights in `qtype`; returns what was written."""
    import torch

    from occamtune.io import writing
    from occamtune.models import load_model

    output = Path(output)
    if qtype not in QTYPES:  # before anything is loaded
        raise ConfigError(f"--gguf must be one of {', '.join(QTYPES)}, got {qtype!r}")
    if output.suffix.lower() != ".gguf":
        raise ConfigError(f"--output {output}: a GGUF export is one file; give a path ending "
                          "in .gguf")
    if output.exists() and not overwrite:
        raise ConfigError(f"{output} exists; give --overwrite to replace it")
    model, tokenizer, meta = load_model(folder, runtime=False)
    if meta.head.task != "generate":
        raise ConfigError(f"{folder} is a {meta.head.task} model: GGUF holds a text generator "
                          "(task generate) for llama.cpp; export this one to ONNX (no --gguf)")
    encoder = model.encoder
    config = encoder.config
    if config.model_type not in FAMILIES:
        raise ModelError(f"GGUF export writes the Llama family ({', '.join(FAMILIES)}); this "
                         f"model is {config.model_type!r}")
    table = encoder.get_input_embeddings()
    if not isinstance(table, torch.nn.Embedding) or getattr(table, "kept_ids", None) is not None \
            and table.kept_ids.numel():
        raise ModelError(f"{folder}: its word embeddings are compressed (a trimmed vocabulary or "
                         "codebook rows), which GGUF cannot hold: llama.cpp reads the whole "
                         "vocabulary as one table; export the run before those steps")
    _check_uniform(encoder, config, folder)
    output.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().float().numpy() for k, v in encoder.state_dict().items()}
    out_layer = None if model.head.tied else model.head.out.weight.detach().float().numpy()
    with writing(output) as tmp:
        info = write_gguf(tmp, config, weights, out_layer, tokenizer, qtype,
                          name=Path(meta.base_model or str(folder)).name, pre=_source_pre(meta))
    weights_file = Path(folder) / "model.safetensors"  # a run's own float32 weights
    fp32 = meta.fp32_bytes or (weights_file.stat().st_size if weights_file.is_file() else None)
    return {"output": str(output), **info, "bytes": output.stat().st_size, "fp32_bytes": fp32}


def _check_uniform(encoder: Any, config: Any, folder: str | Path) -> None:
    """Every layer as wide as the config says: llama.cpp sizes all layers from it."""
    head_dim = _head_dim(config)
    want = {"self_attn.q_proj": (config.num_attention_heads * head_dim, config.hidden_size),
            "self_attn.k_proj": (config.num_key_value_heads * head_dim, config.hidden_size),
            "mlp.gate_proj": (config.intermediate_size, config.hidden_size)}
    for i, layer in enumerate(encoder.layers):
        for path, shape in want.items():
            weight = getattr(layer.get_submodule(path), "weight", None)
            if weight is None or tuple(weight.shape) != shape:
                got = None if weight is None else tuple(weight.shape)
                raise ModelError(f"{folder}: layer {i}'s {path} is {got}, not {shape}: its heads "
                                 "or neurons were pruned or its weights are stored as codes, and "
                                 "llama.cpp needs every layer as wide as the config says")


def _source_pre(meta: Any) -> str | None:
    """`tokenizer.ggml.pre` of the GGUF file the run started from (llama.cpp picks its
    pre-tokenizer by this name); None when it started from a Hugging Face folder."""
    try:
        import gguf

        from occamtune.models import resolve_model
        from occamtune.models.gguf import gguf_location

        where = gguf_location(resolve_model(meta.base_model)) if meta.base_model else None
        if where is None:
            return None
        field = gguf.GGUFReader(str(Path(*where))).fields.get("tokenizer.ggml.pre")
        return None if field is None else str(field.contents())
    except (ModelError, OSError, ValueError, KeyError):  # a moved or missing source only
        return None  # loses the name: llama.cpp then takes its default pre-tokenizer
