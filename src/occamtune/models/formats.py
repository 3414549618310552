"""Model folders by storage format: a registry that each format fills from its own module.

A folder's `occamtune.json` names its format; `load_model` asks the format registered under that
name to rebuild the model. This module registers plain safetensors runs; the packed artifact
(`occamtune.compress.artifact`) and the ONNX export (`occamtune.export`) register themselves, so
this low layer imports neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from occamtune.errors import ModelError
from occamtune.io import writing
from occamtune.models.meta import RunMeta, read_meta, write_meta
from occamtune.models.task_model import TaskModel, encoder_from_config

WEIGHTS_FILE = "model.safetensors"

Loader = Callable[[Path, RunMeta, bool], nn.Module]


@dataclass(frozen=True)
class ModelFormat:
    """How one storage format loads a folder.

    Attributes:
        name: the `format` value in occamtune.json.
        load: `load(folder, meta, runtime) -> model`; `runtime=False` asks for the stored
            weights exactly, to train or compress further.
        trainable: False when the format can only run (evaluate, predict, serve), not be trained
            or compressed further; `why` then says what to use instead.
        why: the reason shown to a user who tries to train or compress it.
        title: what a user calls such a folder, for messages (e.g. "an ONNX export").
    """

    name: str
    load: Loader
    trainable: bool = True
    why: str = ""
    title: str = ""


FORMATS: dict[str, ModelFormat] = {}


def register_format(fmt: ModelFormat) -> ModelFormat:
    """Make a storage format loadable by `load_model` (called by the format's own module)."""
    FORMATS[fmt.name] = fmt
    return fmt


def load_model(folder: str | Path, runtime: bool = True) -> tuple[Any, Any, RunMeta]:
    """Load a saved task model of any registered format, with its tokenizer and metadata.

    Args:
        folder: a run, artifact or export folder.
        runtime: the model prediction and serving use (e.g. an artifact's int8 kernels);
            False: the stored weights exactly, to train or compress further.

    Raises:
        ModelError: not a model folder, an unknown format, or (runtime=False) a format that
            cannot be trained further.
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    meta = read_meta(folder)
    fmt = FORMATS.get(meta.format)
    if fmt is None:
        raise ModelError(f"{folder}: unknown model format {meta.format!r} in occamtune.json; "
                         f"known: {', '.join(sorted(FORMATS))}")
    if not runtime and not fmt.trainable:
        raise ModelError(f"{folder} is {fmt.title or 'a ' + fmt.name + ' model'}: it runs (evaluate, predict, serve) but "
                         f"cannot be trained or compressed; {fmt.why} "
                         f"({meta.source or 'see its occamtune.json'})")
    model = fmt.load(folder, meta, runtime)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder), meta


def save_model(model: TaskModel, tokenizer: Any, folder: str | Path,
               meta: RunMeta | None = None) -> Path:
    """Save weights (safetensors), encoder config, tokenizer and metadata into `folder`
    (`meta`: the run's; default: the model's head with default input settings)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in unshared_state(model).items()}
    with writing(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    model.encoder.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_meta(folder, meta or RunMeta(head=model.head_config))
    return folder


def _load_safetensors(folder: Path, meta: RunMeta, runtime: bool) -> TaskModel:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    model = TaskModel(encoder_from_config(AutoModel, AutoConfig.from_pretrained(folder), meta.head),
                      meta.head)
    load_unshared(model, load_file(str(folder / WEIGHTS_FILE)), folder / WEIGHTS_FILE)
    return model


def unshared_state(model: nn.Module) -> dict[str, Any]:
    """The state dict with each tensor once, under its first name: safetensors refuses tensors
    that share memory, as tied weights do inside a whole encoder-decoder (its embeddings and
    output layer)."""
    seen: set[tuple[int, tuple]] = set()
    out = {}
    for name, value in model.state_dict().items():
        key = (value.data_ptr(), tuple(value.shape))
        if value.numel() and key in seen:
            continue
        seen.add(key)
        out[name] = value
    return out


def load_unshared(model: nn.Module, state: dict[str, Any], source: Any) -> None:
    """Load a state saved by `unshared_state`: every name must be there but the second names of
    the model's own tied tensors, which the load fills through the first."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(model.state_dict()) - set(unshared_state(model))
    wrong = sorted(set(missing) - tied) + sorted(unexpected)
    if wrong:
        raise ModelError(f"{source}: the weights do not fit the model its config describes "
                         f"(missing or unexpected: {wrong[:6]}{' ...' if len(wrong) > 6 else ''})")


register_format(ModelFormat("safetensors", _load_safetensors))


def weights_identity(folder: str | Path) -> str:
    """A short id of a run folder's weights file (path, size, modification time): whatever is
    cached under it is not reused once the model is trained again."""
    weights = Path(folder) / WEIGHTS_FILE
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]
