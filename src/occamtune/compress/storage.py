"""How the artifact stores each float tensor: as its k-bit codes when the compression record
holds codes that it still equals, else in fp16 (all but the task head's) or fp32.

Quantization rounds what the artifact will round (`round_as_stored`) so that the model in memory
is exactly the one on disk: both follow this one rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from occamtune.compress.grid import QuantCodes


def in_half(name: str) -> bool:
    """Whether a float tensor without codes is stored in fp16 (all but the task head's)."""
    return not name.startswith("head.")


def codes_of(codes: Mapping[str, QuantCodes], name: str, tensor: torch.Tensor) -> QuantCodes | None:
    """The k-bit codes of the tensor `name` (its value `tensor`) when `codes` (a compression
    record's) holds codes that it still equals exactly (a later step may have changed it)."""
    quant = codes.get(name)
    if quant is None or quant.codes.numel() != tensor.numel():
        return None
    if not torch.equal(quant.values(), tensor.detach().float().reshape(quant.codes.shape)):
        return None
    return quant


def round_as_stored(model: nn.Module, codes: Mapping[str, QuantCodes]) -> None:
    """Round in place the float tensors an artifact stores in fp16 (all but those stored as their
    `codes`, and the task head) to fp16 values, so that the model in memory is exactly the one
    on disk."""
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if tensor.is_floating_point() and in_half(name) and codes_of(codes, name, tensor) is None:
                tensor.copy_(tensor.half().float())
