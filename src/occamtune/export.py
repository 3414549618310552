"""Export a task model to ONNX, optionally int8-quantized by ONNX Runtime, and run it back.

ONNX Runtime's dynamic int8 quantization (`onnxruntime.quantization.quantize_dynamic`) is the
usual way to make a BERT fast on CPU; occamtune measures its own artifacts against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

INPUTS = ["input_ids", "attention_mask", "shape_ids"]


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                shape_ids: torch.Tensor) -> torch.Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "shape_ids": shape_ids,
                 "token_type_ids": torch.zeros_like(input_ids)}
        return self.model(**batch)


def export_onnx(model: nn.Module, path: str | Path, quantize_int8: bool = False) -> Path:
    """Write `model` as ONNX (dynamic batch and sequence axes); with `quantize_int8`, the file is
    ONNX Runtime's dynamic int8 quantization of it. Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fp32 = path.with_name(path.stem + ".fp32.onnx") if quantize_int8 else path
    dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in INPUTS)
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS}
    model.eval()
    torch.onnx.export(_Wrapper(model), dummy, str(fp32), input_names=INPUTS, output_names=["logits"],
                      dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    if quantize_int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
        fp32.unlink()
    return path


class OnnxTaskModel:
    """An ONNX Runtime session that answers like a TaskModel (`model(**batch)` -> logits), so the
    evaluation and prediction code runs on it unchanged."""

    def __init__(self, path: str | Path, head_config: Any, pad_id: int = 0, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.head_config = head_config
        self.pad_id = pad_id

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        feeds = {name: _np(batch, name) for name in INPUTS}
        return torch.from_numpy(self.session.run(["logits"], feeds)[0])

    def eval(self) -> OnnxTaskModel:
        return self


def _np(batch: dict[str, torch.Tensor], name: str) -> np.ndarray:
    if name in batch:
        return batch[name].numpy().astype(np.int64)
    return np.zeros_like(batch["input_ids"].numpy(), dtype=np.int64)
