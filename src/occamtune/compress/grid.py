"""The k-bit grid every quantized tensor is stored on: symmetric codes with per-group fp16 scales.

For a group g of weights along the input dimension, `scale_g = max|w_g| / (2^(k-1) - 1)` and
`code = round(w / scale_g)`; the weight the model computes with is `code * scale_g`. Quantization
(`quantize.py`), GPTQ (`gptq.py`), the codebook's centroids and the artifact's encoder all use
this one grid, so it sits below them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FP16_TINY = 2.0**-24  # the smallest positive fp16 value: scales are stored as fp16


@dataclass
class QuantCodes:
    """The k-bit codes of one tensor, as the artifact stores them.

    Attributes:
        codes: int8 (rows, cols), a 2-D view of the tensor, in [-(2^(k-1)-1), 2^(k-1)-1].
        scales: float32 (rows, ceil(cols / group)), each exactly representable in fp16.
        bits: the code width k.
        group: the effective group length along the columns.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    bits: int
    group: int

    def values(self) -> torch.Tensor:
        """(rows, cols) the fp32 weights the codes stand for."""
        return dequantize(self.codes, self.scales, self.group)


def quantize_tensor(weight: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric k-bit codes and fp16-exact scales of a 2-D tensor.

    Returns:
        codes: int8 (rows, cols) in [-(2^(k-1)-1), 2^(k-1)-1].
        scales: float32 (rows, n_groups), each exactly representable in fp16.
    """
    rows, cols = weight.shape
    group = group_of(cols, group_size)
    n_groups = -(-cols // group)
    padded = torch.zeros(rows, n_groups * group, dtype=torch.float32)
    padded[:, :cols] = weight.detach().float()
    grouped = padded.view(rows, n_groups, group)  # (R, G, g)
    qmax = 2 ** (bits - 1) - 1
    scales = group_scales(grouped, qmax)  # (R, G)
    codes = torch.round(grouped / scales.unsqueeze(-1)).clamp(-qmax, qmax)
    return codes.view(rows, -1)[:, :cols].to(torch.int8).contiguous(), scales


def group_scales(grouped: torch.Tensor, qmax: int) -> torch.Tensor:
    """fp16-exact scales (...) of weight groups (..., g): the largest magnitude maps to `qmax`."""
    return (grouped.abs().amax(dim=-1) / qmax).half().float().clamp(min=FP16_TINY)


def group_of(cols: int, group_size: int) -> int:
    """The effective group length: `group_size`, or the whole row when 0 or not smaller."""
    return group_size if 0 < group_size < cols else cols


def dequantize(codes: torch.Tensor, scales: torch.Tensor, group: int) -> torch.Tensor:
    """fp32 weights from codes (R, C) and scales (R, ceil(C / group))."""
    cols = codes.shape[1]
    expanded = scales.float().repeat_interleave(group, dim=1)[:, :cols]  # (R, C)
    return codes.float() * expanded


def set_to_codes(target: torch.Tensor, codes: QuantCodes) -> None:
    """Overwrite `target` (a weight, or a codebook's centroids: the codes are a 2-D view of it)
    with the values its codes stand for."""
    with torch.no_grad():
        target.copy_(codes.values().view(target.shape))
