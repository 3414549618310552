"""GPTQ rounding (Frantar et al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers"; Optimal Brain Quantization, Frantar and Alistarh 2022).

Round-to-nearest rounds every weight on its own. GPTQ rounds the columns (input features) of a
Linear weight one after another and, after each, spreads that column's rounding error over the
columns not yet rounded, weighted by the inverse Hessian of the layer's squared output error,
`H = X^T X` over calibration inputs X. The output error the layer makes on real inputs drops,
not the weight error; at 3 bits this is the difference between a usable and a broken model.

The codes and scales have the same format as `quantize_tensor`'s (symmetric, per group along
the input dimension, fp16 scales), so the artifact and the loaded model do not change. Written
here by hand: the GPTQ packages on PyPI (auto-gptq, gptqmodel, optimum) target decoder LLMs on
CUDA with their own int4 kernels and storage formats; torchao's GPTQ is tied to its int4 tensor
subclasses. The algorithm itself is 30 lines.

Layers are quantized block by block (every Linear under `...layer.<i>.` together): each block's
Hessians come from a calibration pass through the model whose earlier blocks are already
quantized, so each block learns to correct the errors made before it, as in the paper.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn

from occamtune.compress.calibrate import token_means
from occamtune.compress.grid import group_of, group_scales

BLOCK = 128  # columns rounded per lazy batch update (the paper's B)
_LAYER = re.compile(r"^(.*\.layer\.\d+)\.")


def hessians(model: nn.Module, modules: dict[str, nn.Linear],
             batches: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """`X^T X / n` of each Linear's inputs over the calibration batches (padding left out)."""
    def second_moment(x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        return x.T @ x

    means = token_means(model, modules, batches, second_moment)
    return {name: torch.as_tensor(h).float() for name, h in means.items()}


def gptq_round(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int,
               damp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ codes and scales of a (rows, cols) weight given its input Hessian (cols, cols).

    Returns the same as `quantize_tensor`: int8 codes (rows, cols) and fp16-exact float32 scales
    (rows, n_groups). Each group's scale is set from the weights as updated when rounding
    reaches the group (the paper's setting without activation reordering).
    """
    w = weight.detach().float().clone()  # (R, C), updated in place as errors are spread
    rows, cols = w.shape
    group = group_of(cols, group_size)
    qmax = 2 ** (bits - 1) - 1
    h = hessian.clone()
    dead = torch.diag(h) == 0  # inputs never seen: nothing to correct, round to nearest
    h[dead, dead] = 1.0
    h += damp * torch.diag(h).mean() * torch.eye(cols)
    # Upper Cholesky factor of H^-1: row i holds the update weights for the columns after i.
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    codes = torch.zeros(rows, cols, dtype=torch.int8)
    scales = torch.zeros(rows, -(-cols // group))
    for start in range(0, cols, BLOCK):
        end = min(start + BLOCK, cols)
        err = torch.zeros(rows, end - start)
        for i in range(start, end):
            if i % group == 0:
                scales[:, i // group] = group_scales(w[:, i:i + group], qmax)
            s = scales[:, i // group]
            q = torch.round(w[:, i] / s).clamp(-qmax, qmax)
            codes[:, i] = q.to(torch.int8)
            e = (w[:, i] - q * s) / hinv[i, i]  # (R,)
            w[:, i:end] -= e[:, None] * hinv[i, i:end][None, :]
            err[:, i - start] = e
        w[:, end:] -= err @ hinv[start:end, end:]  # the block's errors on the later columns
    return codes, scales


def blocks(names: list[str], layers: list[str] | None = None) -> list[list[str]]:
    """Linear names grouped by transformer layer, in model order: under one of the module names
    `layers` (the family adapter's), else under a BERT-style `...layer.<i>.`; a name outside any
    layer is its own group."""
    groups: dict[str, list[str]] = {}
    for name in names:
        if layers is not None:
            key = next((p for p in layers if name.startswith(p + ".")), name)
        else:
            match = _LAYER.match(name)
            key = match.group(1) if match else name
        groups.setdefault(key, []).append(name)
    return list(groups.values())
