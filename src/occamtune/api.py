"""The public verbs. The CLI calls these and nothing else of the library's internals.

    import occamtune
    run = occamtune.train(occamtune.load_config("configs/quick-ner.yaml"))
    occamtune.evaluate(run.output, split="test")
    occamtune.predict(run.output, ["Angela Merkel met Emmanuel Macron in Paris ."])
    occamtune.compress_run(run.output, "vocab(rank=32), codebook, quantize(bits=4)", "runs/small")
    occamtune.shrink(run.output, "runs/shrunk", max_drop=1.0, budget_seconds=1800)
    occamtune.export("runs/small", "runs/small-onnx")
    occamtune.serve("runs/small", port=8000)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occamtune.config import RunConfig
from occamtune.errors import ConfigError
from occamtune.inference import Predictor
from occamtune.search.shrink import ShrinkResult
from occamtune.search.shrink import shrink as _shrink
from occamtune.search.space import SearchSpace
from occamtune.train.run import Run, train_run

__all__ = ["Predictor", "Run", "SearchSpace", "ShrinkResult", "codelength", "compress_run",
           "describe_data", "evaluate", "export", "load", "predict", "report", "serve", "shrink",
           "train"]


def train(config: RunConfig, progress: bool = True) -> Run:
    """Fine-tune a pretrained model on a labelled data set.

    Saves the best model on dev into `config.output` (safetensors, tokenizer, `occamtune.json`,
    `config.yaml`), evaluates it on test when there is a test file, and writes `eval_test.json`
    / `eval_test.md`. An interrupted run resumes when called again with the same config.

    Args:
        config: the run's settings (`load_config(path, overrides)` builds one).
        progress: show a progress bar.

    Returns:
        The trained model with its tokenizer, splits and metrics (`run.metrics["test"]`).
    """
    return train_run(config, progress=progress)


def describe_data(config: RunConfig) -> dict[str, Any]:
    """What `train` would read with `config`: per split its file, format, size, tagging scheme
    and label counts, and the problems (file and line) that would stop it."""
    from occamtune.tasks import get_task
    from occamtune.train.prepare import describe_splits

    return describe_splits(get_task(config.task), config.data)


def load(folder: str | Path, decoding: dict[str, Any] | None = None) -> Predictor:
    """Load a trained, compressed or exported model folder for prediction and evaluation;
    `decoding`: a generator's decoding settings instead of its run's, e.g.
    `{"num_beams": 4, "no_repeat_ngram_size": 3}`."""
    return Predictor(folder, decoding)


def evaluate(folder: str | Path, split: str = "test", file: str | Path | None = None,
             write: bool = True, decoding: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a model folder on a split of the data it was trained on, or on any labelled file.

    Args:
        folder: a model folder (trained, compressed or exported).
        split: "train", "dev" or "test": the file recorded in the folder's `config.yaml`.
        file: a labelled file in the task's format (instead of `split`).
        write: also write `eval_<name>.json` and `eval_<name>.md` into the folder.
        decoding: a generator's decoding settings instead of its run's (see `load`).

    Returns:
        The task's metrics (e.g. `f1` and a per-type table for NER), `data_bits`, `n`, and
        `files`: the reports written.
    """
    predictor = load(folder, decoding)
    name = None
    if file is None:
        file, name = split_file(Path(folder), split), split
    metrics = predictor.evaluate_file(file, name=name, write=write)
    stem = name or Path(file).stem
    if write and "not_written" not in metrics:
        metrics["files"] = [str(Path(folder) / f"eval_{stem}.{ext}") for ext in ("json", "md")]
    return metrics


def split_file(folder: Path, split: str) -> Path:
    """The file of `split` recorded in a model folder's training config."""
    from occamtune.config import load_config
    from occamtune.tasks import get_task
    from occamtune.train.prepare import split_paths

    cfg_file = folder / "config.yaml"
    if not cfg_file.is_file():
        raise ConfigError(f"{folder} has no config.yaml recording its data; name a file with --file")
    config = load_config(cfg_file)
    paths = split_paths(get_task(config.task), config.data)
    if split not in paths:
        raise ConfigError(f"the data of {folder} has no {split!r} split (has: {sorted(paths)}); "
                          "name a file with --file")
    return paths[split]


def predict(folder: str | Path, texts: list[str]) -> list[dict[str, Any]]:
    """Predictions for raw texts: entities with offsets (NER) or a label with probabilities."""
    return load(folder).predict(texts)


def compress_run(folder: str | Path, pipeline: str, output: str | Path, overwrite: bool = False,
                 evaluate: bool = True, progress: bool = True,
                 decoding: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compress a trained run with a pipeline and write the packed artifact.

    Args:
        folder: a run folder written by `train`.
        pipeline: e.g. `"distill(layers=3), prune(sparsity=0.8), quantize(bits=4)"`, or the path
            of a YAML file listing `{method: name, **options}`.
        output: the artifact folder to write.
        overwrite: replace a non-empty `output`.
        evaluate: score the artifact on the run's test split.
        progress: show progress bars for the methods that train.
        decoding: a generator's decoding settings (see `load`) that the artifact is scored
            and kept with, instead of the run's.

    Returns:
        `output`, `sizes` (bytes of model.occ, ratio to fp32), `fp32_bytes` and `test` metrics.
    """
    from occamtune.compress.run import compress_run as _compress_run

    return _compress_run(folder, pipeline, output, overwrite=overwrite, evaluate=evaluate,
                         progress=progress, decoding=decoding)


def shrink(run_folder: str | Path, output: str | Path, max_drop: float = 1.0,
           **options: Any) -> ShrinkResult:
    """Search compression pipelines for the smallest model within `max_drop` of the run's dev
    metric; the chosen model is confirmed once on test.

    Args:
        run_folder: a run folder written by `train`.
        output: folder for candidates, the study, the chosen model and `summary.json`.
        max_drop: the largest allowed loss of the task's metric, in points.
        **options: `budget_trials`, `budget_seconds`, `storage`, `study_name`, `seed`, `space`
            (a `SearchSpace`), `progress`, `finalize_search`, `objective` ("size", "latency",
            "both"), `max_latency_ms`, `runtime` ("torch", "onnx"), `decoding` (a
            generator's decoding settings, see `load`, that every candidate is scored with
            and the choice keeps): see `occamtune.search.shrink`.
    """
    return _shrink(run_folder, output, max_drop=max_drop, **options)


def export(folder: str | Path, output: str | Path, int8: bool = True, overwrite: bool = False,
           exporter: str = "dynamo", weights: str | None = None,
           codec: str = "none") -> dict[str, Any]:
    """Export a run or artifact folder to ONNX for ONNX Runtime; `load`, `evaluate`, `predict`
    and `serve` take the exported folder. `weights`: "int8" (ONNX Runtime's dynamic int8, the
    default), "int4" (4-bit `MatMulNBits`: a 4-bit artifact's own codes, exact), "int4-int8"
    (the same 4-bit file, run on int8 kernels once loaded), "fp32", "auto" (int4 for a model
    with codes of at most 4 bits, else int8) or "auto-int8" (the same with int4-int8 for int4);
    None: "int8", or "fp32" when `int8=False`. `exporter`: "dynamo" (torch's current
    exporter, the default) or "torchscript" (the legacy tracer: exports in seconds where the
    other takes a minute). `codec`: "none", or "zstd" (the graphs compressed, model.onnx.zst:
    smaller on disk; `load` decompresses them in memory)."""
    from occamtune.export import export_run

    return export_run(folder, output, int8=int8, overwrite=overwrite, exporter=exporter,
                      weights=weights, codec=codec)


def export_gguf(folder: str | Path, output: str | Path, qtype: str = "q4_1",
                overwrite: bool = False) -> dict[str, Any]:
    """Write a Llama-family text generator (task generate) as one GGUF file for llama.cpp;
    `qtype`: "f32", "f16", "q8_0", "q4_0" or "q4_1" (the `gguf` package's codecs; norms stay
    float32, word embeddings Q8_0 under 4 bits). Returns the bytes and tensor types written."""
    from occamtune.gguf_writer import export_gguf_run

    return export_gguf_run(folder, output, qtype=qtype, overwrite=overwrite)


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8000,
          limits: Any = None, decoding: dict[str, Any] | None = None) -> None:
    """Serve a model folder over HTTP: `POST /predict {"texts": [...]}`, `GET /health`;
    `limits`: a `occamtune.serve.app.ServeLimits` (request size, texts, characters, sub-words);
    `decoding`: a generator's decoding settings instead of its run's (see `load`)."""
    from occamtune.serve.app import serve as _serve

    _serve(folder, host=host, port=port, limits=limits, decoding=decoding)


def report(folder: str | Path) -> tuple[Path, Path]:
    """Write `report.html` and `report.md` (frontier and description-length plots) for a shrink
    output folder; returns their paths."""
    from occamtune.report.render import write_report

    return write_report(folder)


def codelength(task: str, data: str | Path, model: str = "minilm", **options: Any) -> dict[str, Any]:
    """Prequential code length of a data set's labels under a frozen encoder (Voita & Titov,
    2020); `options`: `max_sentences`, `seed`, `max_length`, `batch_size`, `probe`."""
    from occamtune.search.mdl import prequential_codelength

    return prequential_codelength(task, str(data), model, **options)
