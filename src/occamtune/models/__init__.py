"""Task models: a pretrained encoder with a task head; the run metadata; model folders by format.

    model, tokenizer, meta = load_model("runs/ner")   # any registered format
"""

from occamtune.models import known_families  # noqa: F401  (registers the shipped families)
from occamtune.models.families import (
    FAMILIES,
    FamilyAdapter,
    conv1d_to_linear,
    family_of,
    find_family,
)
from occamtune.models.formats import (
    FORMATS,
    WEIGHTS_FILE,
    ModelFormat,
    load_model,
    register_format,
    save_model,
    weights_identity,
)
from occamtune.models.meta import META_FILE, HeadConfig, RunMeta, read_meta, write_meta
from occamtune.models.task_model import (
    TaskModel,
    add_task_tokens,
    build_model,
    check_max_length,
    count_parameters,
    default_pooling,
    encoder_from_config,
    is_decoder_only,
    load_encoder,
    load_tokenizer,
    max_positions,
    resolve_model,
)

__all__ = [
    "FAMILIES",
    "FORMATS",
    "META_FILE",
    "WEIGHTS_FILE",
    "FamilyAdapter",
    "HeadConfig",
    "ModelFormat",
    "RunMeta",
    "TaskModel",
    "add_task_tokens",
    "build_model",
    "check_max_length",
    "conv1d_to_linear",
    "count_parameters",
    "default_pooling",
    "encoder_from_config",
    "family_of",
    "find_family",
    "is_decoder_only",
    "load_encoder",
    "load_model",
    "load_tokenizer",
    "max_positions",
    "read_meta",
    "register_format",
    "resolve_model",
    "save_model",
    "weights_identity",
    "write_meta",
]
