"""Compression: one verb, `compress(model, configs, ctx)`, over methods registered by config type,
and the packed artifact (`save_artifact` / `load_artifact`).

    from occamtune.compress import compress, parse_pipeline, save_artifact
    small = compress(model, parse_pipeline("distill(layers=3), prune(sparsity=0.8), quantize(bits=4)"), ctx)
    save_artifact(small, tokenizer, "runs/ner-small")
"""

from occamtune.compress.artifact import artifact_bytes, load_artifact, save_artifact
from occamtune.compress.base import (
    METHODS,
    CompressContext,
    CompressionConfig,
    SearchDim,
    compress,
    register,
    search_methods,
)
from occamtune.compress.codebook import CodebookConfig
from occamtune.compress.distill import DistillConfig
from occamtune.compress.feature import FeatureExtractConfig
from occamtune.compress.lora import LoraConfig
from occamtune.compress.lowrank import LowRankConfig
from occamtune.compress.pipeline import (
    format_pipeline,
    parse_pipeline,
    pipeline_from_yaml,
    pipeline_to_yaml,
)
from occamtune.compress.prune import PruneConfig
from occamtune.compress.quantize import QuantizeConfig, to_int8_runtime
from occamtune.compress.record import CompressionRecord, StepRecord, record_of
from occamtune.compress.share import ShareConfig
from occamtune.compress.structured import StructuredPruneConfig
from occamtune.compress.vocab import VocabTrimConfig

__all__ = [
    "METHODS",
    "CodebookConfig",
    "CompressContext",
    "CompressionConfig",
    "CompressionRecord",
    "DistillConfig",
    "FeatureExtractConfig",
    "LoraConfig",
    "LowRankConfig",
    "PruneConfig",
    "QuantizeConfig",
    "SearchDim",
    "ShareConfig",
    "StepRecord",
    "StructuredPruneConfig",
    "VocabTrimConfig",
    "artifact_bytes",
    "compress",
    "format_pipeline",
    "load_artifact",
    "parse_pipeline",
    "pipeline_from_yaml",
    "pipeline_to_yaml",
    "record_of",
    "register",
    "save_artifact",
    "search_methods",
    "to_int8_runtime",
]
