"""Export a task model to ONNX, fp32, int8 or 4-bit, and run it back.

ONNX Runtime's dynamic int8 quantization (`onnxruntime.quantization.quantize_dynamic`) is the
usual way to make a BERT fast on CPU: occamtune measures its own artifacts against it, and
`occamtune export` runs a trained or compressed model (e.g. a distilled student) on it:

    occamtune export runs/ner-small --output runs/ner-onnx
    occamtune evaluate runs/ner-onnx --split test       # load(), predict and serve work on it too

`--weights int4` writes the Linear weights as ONNX Runtime's 4-bit `MatMulNBits` instead: a
4-bit artifact's own codes and scales, so that the file stays near the artifact's size and
computes its exact weights (`export_nbits.py`).

A text generator (task generate) is written as a decoding step with a key/value cache instead
(`onnx_generate.py`), with the same weight formats.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from occamtune.models import ModelFormat, RunMeta, load_model, register_format, write_meta
from occamtune.onnx_attention import traced_attention


class _Wrapper(nn.Module):
    """The task model with its batch as positional tensors (ONNX inputs are positional)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        batch = dict(zip(self.names, tensors))
        batch.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
        return self.model(**batch)


EXPORTERS = ("dynamo", "torchscript")
WEIGHTS = ("int8", "int4", "int4-int8", "fp32")
NBITS = ("int4", "int4-int8")  # the weights `export_nbits.to_nbits` writes


AUTO = ("auto", "auto-int8")  # weights chosen by the model: `auto_weights`


def auto_weights(model: nn.Module, int8_kernels: bool = False) -> str:
    """The weights `--weights auto` writes: "int4" when the model holds k-bit codes of at most
    4 bits (the 4-bit export computes with those codes: the model's exact weights), else "int8"
    (ONNX Runtime's int8 kernels: re-rounding an fp32 or 5-8-bit model to 4 bits would lose
    accuracy that nothing measured). With `int8_kernels` (`--weights auto-int8`), "int4-int8"
    where it would be "int4": the same 4-bit file, run on the int8 kernels."""
    from occamtune.compress.record import record_of

    if any(c.bits <= 4 for c in record_of(model).codes.values()):
        return "int4-int8" if int8_kernels else "int4"
    return "int8"


def export_onnx(model: nn.Module, path: str | Path, quantize_int8: bool = False,
                per_channel: bool = True, exporter: str = "dynamo", weights: str | None = None,
                accuracy_level: int = 0) -> Path:
    """Write `model` as ONNX (dynamic batch and sequence axes); with `quantize_int8`, the file is
    ONNX Runtime's dynamic int8 quantization of it, with one scale per output channel
    (`per_channel`, at no cost in speed: it keeps more accuracy than ORT's default of one scale
    per matrix; docs/benchmarks/compression.md). Returns the path written.

    Args:
        exporter: "dynamo", torch's current exporter (`torch.export`; slower to export, the
            maintained path), falling back to "torchscript" (the legacy tracer, deprecated in
            torch) with a note when the model does not export through `torch.export`.
        weights: "fp32", "int8", "int4" (4-bit `MatMulNBits`, from the model's own codes where
            it has them: `export_nbits.to_nbits`) or "int4-int8" (the same 4-bit codes on disk,
            widened to int8 weights when ONNX Runtime loads the file, to run on its int8
            kernels: `export_nbits.widen_to_int8`); None: "int8" if `quantize_int8` else "fp32".
        accuracy_level: with "int4", `MatMulNBits`' compute type (0: fp32, exact; 4: int8
            activations).
    """
    from occamtune.errors import ConfigError
    from occamtune.tasks import get_task

    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    weights = weights or ("int8" if quantize_int8 else "fp32")
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    generator = get_task(model.head_config.task).generative
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fp32 = path.with_name(path.stem + ".fp32.onnx") if weights != "fp32" else path
    names = get_task(model.head_config.task).model_inputs
    model.eval()
    # the exporter drops inputs the graph does not read (e.g. shape_ids of a head without word
    # shapes): OnnxTaskModel feeds the session the inputs it declares
    pairs = [(fp32, path)]  # each graph written in fp32, and the file its weights go to
    with _quiet(), traced_attention(model):
        if generator:  # a decoding step with a key/value cache (its own exporter)
            from occamtune.onnx_generate import export_generator, graphs, share_tied_head

            export_generator(model, fp32)
            pairs = list(zip(graphs(fp32, model), graphs(path, model)))
            if weights == "fp32":
                for graph, _ in pairs:
                    share_tied_head(graph)
        elif exporter == "dynamo":
            try:
                _export_dynamo(_Wrapper(model, names).eval(), names, fp32)
            except torch.onnx.OnnxExporterError as exc:  # torch.export cannot capture every
                # model (data-dependent control flow): the tracer can
                import sys

                print(f"occamtune: note: torch.export could not export the model "
                      f"({type(exc).__name__}); using the TorchScript exporter", file=sys.stderr)
                exporter = "torchscript"
        if exporter == "torchscript" and not generator:
            _export_torchscript(_Wrapper(model, names).eval(), names, fp32)
        for source, target in pairs:
            if weights == "int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                                 per_channel=per_channel)
            elif weights in NBITS:
                from occamtune.compress.record import record_of
                from occamtune.export_nbits import to_nbits

                to_nbits(source, target, record_of(model).codes, accuracy_level=accuracy_level,
                         int8_kernels=weights == "int4-int8")
    for source, target in pairs:
        if source != target:
            source.unlink()
    return path


def _export_dynamo(wrapper: nn.Module, names: tuple[str, ...], path: Path) -> None:
    from torch.export import Dim

    batch, seq = Dim("batch"), Dim("seq")
    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    torch.onnx.export(wrapper, dummy, str(path), input_names=list(names), output_names=["logits"],
                      dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),
                      opset_version=18, dynamo=True, verbose=False)


def _export_torchscript(wrapper: nn.Module, names: tuple[str, ...], path: Path) -> None:
    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "seq"} for name in names}
    torch.onnx.export(wrapper, dummy, str(path), input_names=list(names), output_names=["logits"],
                      dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)


QUIET_LOGGERS = ("", "torch.onnx", "torch.export", "torch._dynamo", "onnxscript",
                 # logs every node it skips at INFO (its import calls logging.basicConfig)
                 "onnxruntime.quantization.matmul_nbits_quantizer")


class _quiet:
    """Keep the exporters' and ONNX Runtime's warnings that a user cannot act on (tracer
    warnings, axis renames, "consider pre-processing") off the screen."""

    def __enter__(self) -> None:
        import logging
        import warnings

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        # torch's exporter logs through its own loggers (e.g. "torchvision is not installed")
        self._levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        import logging

        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(*exc)


ONNX_FILE = "model.onnx"
# how the graphs are stored: as ONNX Runtime reads them, or compressed with zstd and decompressed
# in memory when loaded (`onnx_cache.onnx_session`). Why: ONNX has no entropy coding, and a
# 4-bit model's codes and scales are far from uniform bytes (an artifact's model.occ is
# compressed the same way; benchmarks/nbits.py measures both forms)
ONNX_CODECS = ("none", "zstd")


def export_run(folder: str | Path, output: str | Path, int8: bool = True,
               overwrite: bool = False, exporter: str = "dynamo",
               weights: str | None = None, notes: bool = True,
               codec: str = "none") -> dict[str, Any]:
    """Export the model of a run or artifact folder to `output`: model.onnx, its tokenizer, and
    an occamtune.json saying so, so that `load_model` and every command that takes a model
    folder run it on ONNX Runtime. `weights`: "int8" (the default), "int4", "int4-int8", "fp32",
    "auto" or "auto-int8"
    (`auto_weights`); None: "int8", or "fp32" when `int8` is False. `codec`: "none" (graphs
    any ONNX Runtime reads) or "zstd" (model.onnx.zst: smaller on disk, read by occamtune's
    loader, or by anyone who decompresses it first). `notes`: print what was
    rounded (the returned dict says it either way)."""
    from occamtune.errors import ConfigError
    from occamtune.io import check_apart, clear_output, portable_path
    from occamtune.tasks import get_task

    weights = weights or ("int8" if int8 else "fp32")
    if weights not in (*WEIGHTS, *AUTO):  # before anything is written
        raise ConfigError(f"weights must be one of {', '.join((*WEIGHTS, *AUTO))}, got {weights!r}")
    if codec not in ONNX_CODECS:
        raise ConfigError(f"codec must be one of {', '.join(ONNX_CODECS)}, got {codec!r}")
    folder, output = Path(folder), Path(output)
    check_apart(output, {"model": folder})
    clear_output(output, overwrite)
    model, tok, meta = load_model(folder, runtime=False)  # the stored weights, not int8 kernels
    if weights in AUTO:
        weights = auto_weights(model, int8_kernels=weights == "auto-int8")
    step: dict[str, Any] = {}
    if get_task(meta.head.task).generative:  # what the loader needs to drive the decoding
        from occamtune.onnx_generate import step_info  # step; refuses before anything is written

        step = step_info(model)
    tmp = output.with_name(f".{output.name}.tmp")  # written in full, then renamed: never half
    shutil.rmtree(tmp, ignore_errors=True)
    info: dict[str, Any] = dict(step)
    files, sources = [tmp / ONNX_FILE], [tmp / "model.fp32.onnx"]
    if step.get("seq2seq"):  # its encoder's and cross-attention's graphs beside the step
        from occamtune.onnx_generate import graphs

        files, sources = graphs(files[0], model), graphs(sources[0], model)
        info.update(encoder_onnx=files[1].name, cross_onnx=files[2].name)
    if weights in NBITS:  # the rewrite's report goes into the folder's metadata
        export_onnx(model, sources[0], exporter=exporter)
        counts = [_to_nbits(model, a, b, notes, int8_kernels=weights == "int4-int8")
                  for a, b in zip(sources, files)]
        info["nbits"] = {k: sum(c[k] for c in counts) for k in counts[0]}
    else:
        export_onnx(model, tmp / ONNX_FILE, exporter=exporter, weights=weights)
    tok.save_pretrained(tmp)
    if step:  # the decoder's config, for `generate`
        model.encoder.config.save_pretrained(tmp)
    if (folder / "config.yaml").is_file():  # the run's data, for `evaluate --split`
        shutil.copy(folder / "config.yaml", tmp / "config.yaml")
    pad_id = int(getattr(model.encoder.config, "pad_token_id", 0) or 0)
    info["onnx"] = ONNX_FILE
    if codec == "zstd":
        info.update({k: _zstd(tmp / info[k]) for k in GRAPH_KEYS if k in info})
    write_meta(tmp, meta.derived("onnx", source=portable_path(folder),
                                 format_info={"int8": weights == "int8", "weights": weights,
                                              "pad_id": pad_id, "codec": codec, **info}))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(output)
    return {"output": str(output), "bytes": export_bytes(output),
            "int8": weights == "int8", "weights": weights, "codec": codec, **info}


GRAPH_KEYS = ("onnx", "encoder_onnx", "cross_onnx")  # format_info's graph files


def _zstd(path: Path) -> str:
    """Replace the graph at `path` by its zstd-compressed `.zst` file; the new file's name."""
    from occamtune.compress.artifact import compress_bytes
    from occamtune.onnx_cache import ZSTD_SUFFIX

    out = path.with_name(path.name + ZSTD_SUFFIX)
    out.write_bytes(compress_bytes(path.read_bytes(), "zstd"))
    path.unlink()
    return out.name


def export_bytes(folder: str | Path) -> int:
    """Size on disk of an export's graphs (an encoder-decoder's three)."""
    from occamtune.models import read_meta

    folder = Path(folder)
    info = read_meta(folder).format_info
    return sum((folder / info[k]).stat().st_size for k in GRAPH_KEYS if k in info)


def _to_nbits(model: nn.Module, fp32: Path, path: Path, notes: bool = True,
              int8_kernels: bool = False) -> dict[str, int]:
    """`export_nbits.to_nbits` of an fp32 export (then removed); its counts, with a note when
    Linear weights had no codes of at most 4 bits (rounded to nearest, not the model's own)."""
    import sys

    from occamtune.compress.record import record_of
    from occamtune.export_nbits import to_nbits

    with _quiet():
        counts = to_nbits(fp32, path, record_of(model).codes, int8_kernels=int8_kernels).counts()
    fp32.unlink()
    if counts["rounded"] and notes:
        print(f"occamtune: note: {counts['rounded']} of {counts['rounded'] + counts['exact']} "
              f"Linear weights had no codes of at most 4 bits: ONNX Runtime rounded them to "
              f"4 bits (round to nearest), so the export no longer computes the model's exact "
              f"weights there", file=sys.stderr)
    return counts


class OnnxTaskModel:
    """An ONNX Runtime session that answers like a TaskModel (`model(**batch)` -> logits), so the
    evaluation and prediction code runs on it unchanged."""

    def __init__(self, path: str | Path, head_config: Any, pad_id: int = 0,
                 threads: int | None = None, spin: bool = True) -> None:
        """`threads`: ONNX Runtime's intra-op threads; None: as many as torch uses
        (`torch.get_num_threads()`, which `--threads` and OMP_NUM_THREADS set), so that a
        model and its export are timed on the same cores; 0: ONNX Runtime's own default.
        `spin`: whether those threads spin, waiting for work, after each run (ONNX Runtime's
        default); False for a decoding step (`onnx_cache.SPINNING`)."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        threads = torch.get_num_threads() if threads is None else threads
        if threads:
            opts.intra_op_num_threads = threads
        from occamtune.onnx_cache import SPINNING, onnx_session

        if not spin:
            opts.add_session_config_entry(SPINNING, "0")
        self.session = onnx_session(Path(path), opts)
        self.head_config = head_config
        self.pad_id = pad_id

    @property
    def labels(self) -> list[str]:
        return list(self.head_config.labels)

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        feeds = {i.name: _np(batch, i.name) for i in self.session.get_inputs()}
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])

    def eval(self) -> OnnxTaskModel:
        return self


def _np(batch: dict[str, torch.Tensor], name: str) -> np.ndarray:
    if name in batch:
        return batch[name].numpy().astype(np.int64)
    return np.zeros_like(batch["input_ids"].numpy(), dtype=np.int64)


def _load_onnx(folder: Path, meta: RunMeta, runtime: bool) -> Any:
    generator = bool(meta.format_info.get("generator"))
    model = OnnxTaskModel(folder / meta.format_info["onnx"], meta.head,
                          pad_id=int(meta.format_info.get("pad_id", 0)), spin=not generator)
    if not generator:
        return model
    from occamtune.onnx_generate import load_generator

    return load_generator(folder, model.session, meta.head, meta.format_info, model.pad_id)


register_format(ModelFormat("onnx", _load_onnx, trainable=False,
                            why="use the run it was exported from", title="an ONNX export"))
