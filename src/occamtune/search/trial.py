"""One candidate of the search: compress a copy of the teacher (reusing cached trained students),
check it cheaply on a slice of dev, save the artifact, and measure it as loaded from disk."""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from occamtune import inference
from occamtune.errors import ModelError
from occamtune.io import portable_path
from occamtune.models.families import stacks_of


@dataclass
class Teacher:
    """The fine-tuned model with its data and the context the compression methods use."""

    folder: Path
    model: nn.Module
    tokenizer: Any
    meta: Any  # RunMeta
    cfg: Any  # RunConfig
    splits: dict[str, Any]
    ctx: Any  # CompressContext
    fp32_bytes: int
    metric: str
    identity: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    decoding: dict[str, Any] = field(default_factory=dict)  # settings given instead of the run's

    @property
    def num_layers(self) -> int:
        """The layers a student can keep fewer of: the encoder's (an encoder-decoder's
        decoder's), or 1 where its family cannot drop layers (ALBERT runs one shared layer;
        a model with no layout adapter): the search proposes no student there."""
        try:
            return len(stacks_of(self.model.encoder, "distill")[-1].layers())
        except ModelError:
            return 1


OBJECTIVES = ("size", "latency", "both")
RUNTIMES = ("torch", "onnx", "onnx-int8")
EXPORT_WEIGHTS = {"onnx": "auto", "onnx-int8": "auto-int8"}  # runtime -> `export --weights`
DEPLOYED_SUFFIX = "-onnx"  # candidates/<n>-onnx/: the ONNX export of candidates/<n>/


@dataclass(frozen=True)
class Measure:
    """How candidates are measured (the cheap dev-slice check, the latency slice, the runtime)
    and which one the search chooses (`goal`).

    `runtime`: "torch" measures the artifact as `load` runs it; "onnx" measures its deployable
    form, the ONNX export ONNX Runtime runs (`export --weights auto`: 4-bit `MatMulNBits` from
    the artifact's own codes where it has codes of at most 4 bits, else int8): the bytes of
    model.onnx, the dev metric and the latency of that file; "onnx-int8" the same with
    `--weights auto-int8` (those 4-bit codes run on the int8 kernels: faster, not exact).
    `objective`: choose the smallest ("size"), the fastest ("latency"), or the one with the
    least bytes x latency ("both": the most times smaller times times faster), among the
    candidates within `max_drop` and, where given, at most `max_latency_ms` per sentence.
    """

    max_drop: float = 1.0
    objective: str = "size"
    max_latency_ms: float | None = None
    runtime: str = "torch"
    # the legacy tracer exports in seconds where torch.export takes a minute, once per trial;
    # what it wrote is measured as it runs (dev metric, latency), not assumed
    exporter: str = "torchscript"
    prune_factor: float = 3.0  # prune when the slice drop exceeds prune_factor * max_drop
    # QAT retries only a candidate that missed by at most retry_factor * max_drop: QAT brings
    # back a fraction of a miss, and a retry of a far miss takes the budget a narrow one needs
    # (docs/benchmarks/search.md)
    retry_factor: float = 1.5
    prune_slice: int = 500  # dev sentences of the cheap check
    latency_sentences: int = 256
    latency_batch: int = 32

    def __post_init__(self) -> None:
        from occamtune.errors import ConfigError

        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                              f"got {self.objective!r}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if not self.retry_factor >= 1:
            raise ConfigError(f"--retry-factor must be at least 1 (1: no QAT retries), got "
                              f"{self.retry_factor}")
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise ConfigError(f"--max-latency-ms must be a positive number of milliseconds per "
                              f"sentence, got {self.max_latency_ms}")

    def goal(self) -> dict[str, Any]:
        """`records.choose`'s arguments: the tolerance, the constraint and the objective."""
        return {"max_drop": self.max_drop, "objective": self.objective,
                "max_latency_ms": self.max_latency_ms}


def load_teacher(run_folder: str | Path, decoding: dict[str, Any] | None = None) -> Teacher:
    """Load the trained run, its encoded splits and a compression context (no progress bars);
    with `decoding`, a generator decodes with those settings instead of the run's."""
    from occamtune.compress.run import make_context
    from occamtune.models import WEIGHTS_FILE, load_model, weights_identity
    from occamtune.tasks import get_task
    from occamtune.train.run import load_run_data

    folder = Path(run_folder)
    model, tok, meta = load_model(folder, runtime=False)
    given = inference.set_decoding(model, decoding, folder)
    cfg, splits = load_run_data(folder, tok, model.labels, model.head_config)
    ctx = make_context(cfg, splits, tok, progress=False, teacher=model)
    return Teacher(folder, model, tok, meta, cfg, splits, ctx, (folder / WEIGHTS_FILE).stat().st_size,
                   get_task(cfg.task).metric, weights_identity(folder), decoding=given)


def dev_slice(teacher: Teacher, n: int) -> tuple[Any, list[Any]]:
    """The first `n` dev sentences / texts and their features."""
    from occamtune.tasks import get_task

    split = teacher.splits["dev"]
    if n >= len(split.dataset.items):
        return split.dataset, split.features
    return get_task(teacher.cfg.task).take(split.dataset, split.features, n)


def latency_ms(model: nn.Module, features: list[Any], batch_size: int) -> float:
    """Milliseconds per sentence at `batch_size` over `features`, after one warm-up batch."""
    return 1000.0 / inference.throughput(model, features, batch_size, warmup=1)


def measure_base(teacher: Teacher, m: Measure) -> dict[str, Any]:
    """The uncompressed model on dev (metric, data bits, latency), on the dev slice, and on test."""
    dev = teacher.splits["dev"]
    full = inference.evaluate(teacher.model, dev.dataset, dev.features)
    sub_ds, sub_feats = dev_slice(teacher, m.prune_slice)
    base = {"bytes": teacher.fp32_bytes, "dev_metric": float(full[teacher.metric]),
            "data_bits": float(full["data_bits"]),
            "slice_metric": float(inference.evaluate(teacher.model, sub_ds, sub_feats)[teacher.metric]),
            "latency_ms": latency_ms(teacher.model, dev.features[:m.latency_sentences], m.latency_batch)}
    if "test" in teacher.splits:
        test = teacher.splits["test"]
        base["test_metric"] = float(inference.evaluate(teacher.model, test.dataset,
                                                       test.features)[teacher.metric])
    return base


def is_cached(config: Any) -> bool:
    """Whether the model after this step is cached: its method trains (`trains`, minutes to
    hours on real data), even when told not to (structured pruning with epochs=0 still measures
    and refits every layer); every pipeline that starts with the same steps reuses it."""
    return type(config).trains


def is_trained(config: Any) -> bool:
    """Whether this step trains (what the search's schedule plans around)."""
    return config.training()


def prefix_key(teacher: Teacher, configs: list[Any]) -> str:
    """The cache folder name of the model after `configs`: every field of every step, defaults
    included, so that a step whose defaults changed (a new option) is not served an old model;
    numbers as floats, so that `ffn=0` and `ffn=0.0` are one step."""
    import json

    def number(v: Any) -> Any:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    steps = json.dumps([{k: number(v) for k, v in c.to_dict().items()} for c in configs],
                       sort_keys=True)
    return hashlib.sha1(f"{teacher.identity}|{steps}".encode()).hexdigest()[:16]


def compress_cached(teacher: Teacher, configs: list[Any], cache: Path) -> nn.Module:
    """Apply `configs` to a copy of the teacher. The model after each training step is saved
    in `cache/<prefix key>/` and loaded by later pipelines that start with the same steps."""
    from occamtune.compress import compress
    from occamtune.config import DECODING
    from occamtune.models import load_model

    model, start = None, 0
    for i in range(len(configs), 0, -1):
        folder = cache / prefix_key(teacher, configs[:i])
        if is_cached(configs[i - 1]) and (folder / "occamtune.json").is_file():
            model, start = load_model(folder, runtime=False)[0], i
            # a trained student does not depend on the decoding: it decodes as the teacher
            model.head_config.extra.update({k: v for k, v in teacher.model.head_config.extra.items()
                                            if k in DECODING})
            break
    model = model if model is not None else copy.deepcopy(teacher.model)
    for i in range(start, len(configs)):
        model = compress(model, [configs[i]], teacher.ctx)
        if is_cached(configs[i]):
            _save_cache(teacher, model, cache / prefix_key(teacher, configs[:i + 1]))
    return model


def _save_cache(teacher: Teacher, model: nn.Module, folder: Path) -> None:
    """Save a trained intermediate model losslessly (fp32, no entropy coder: the artifact format
    describes shared and resized layers, which safetensors cannot); a concurrent worker's copy wins
    if it was first."""
    from occamtune.compress import save_artifact

    tmp = folder.with_name(f".{folder.name}.{socket.gethostname()}.{os.getpid()}")
    save_artifact(model, teacher.tokenizer, tmp, codec="none", half_floats=False)
    try:
        os.rename(tmp, folder)
    except OSError:  # already cached by another worker
        shutil.rmtree(tmp, ignore_errors=True)


class Hopeless(Exception):
    """The candidate lost far more than allowed on the dev slice; not worth measuring."""


def deployed_folder(folder: Path) -> Path:
    """Where a candidate's ONNX export lies (runtime "onnx"): beside its artifact folder, as
    `export` refuses an output inside the model it reads."""
    return folder.with_name(folder.name + DEPLOYED_SUFFIX)


def run_candidate(teacher: Teacher, configs: list[Any], folder: Path, cache: Path,
                  m: Measure) -> dict[str, Any]:
    """Compress, check on the dev slice, save the artifact in `folder`, and measure it from disk:
    bytes on disk, dev metric, dev data bits, latency (ms per sentence). With runtime "onnx",
    these are the ONNX export's (`deployed_folder`), and `artifact_bytes` the artifact's."""
    from occamtune.compress import save_artifact
    from occamtune.models import load_model

    start = time.perf_counter()
    model = compress_cached(teacher, configs, cache)
    sub_ds, sub_feats = dev_slice(teacher, m.prune_slice)
    slice_metric = float(inference.evaluate(model, sub_ds, sub_feats)[teacher.metric])
    if teacher.base["slice_metric"] - slice_metric > m.prune_factor * m.max_drop:
        raise Hopeless(f"dev-slice {teacher.metric} {slice_metric:.2f} vs base "
                       f"{teacher.base['slice_metric']:.2f}")
    sizes = save_artifact(model, teacher.tokenizer, folder,
                          meta=teacher.meta.derived("artifact", fp32_bytes=teacher.fp32_bytes,
                                                    source=portable_path(teacher.folder)))
    shutil.copy(teacher.folder / "config.yaml", folder / "config.yaml")
    deployed: dict[str, Any] = {}
    if m.runtime != "torch":
        from occamtune.export import export_run

        info = export_run(folder, deployed_folder(folder), weights=EXPORT_WEIGHTS[m.runtime],
                          overwrite=True, exporter=m.exporter, notes=False)
        deployed = {"bytes": int(info["bytes"]), "artifact_bytes": int(sizes["model_occ"]),
                    "deployed": str(deployed_folder(folder)), "weights": info["weights"]}
    loaded = load_model(deployed_folder(folder) if deployed else folder)[0]
    dev = teacher.splits["dev"]
    metrics = inference.evaluate(loaded, dev.dataset, dev.features)
    return {"bytes": int(sizes["model_occ"]), **deployed, "dev_metric": float(metrics[teacher.metric]),
            "data_bits": float(metrics["data_bits"]), "slice_metric": slice_metric,
            "latency_ms": latency_ms(loaded, dev.features[:m.latency_sentences], m.latency_batch),
            "artifact": str(folder), "worker": f"{socket.gethostname()}:{os.getpid()}",
            "seconds": time.perf_counter() - start}
