"""Statistics of module inputs or outputs over the calibration batches, per real token.

GPTQ needs each Linear's input second moment X^T X / n; structured pruning needs each FFN
neuron's mean squared activation. Both are means over the real (not padding) tokens of a
calibration pass, gathered by forward hooks: one function serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from occamtune.models.families import seq2seq_decoder

SOURCE_MASK, DECODER_MASK = "attention_mask", "decoder_attention_mask"


class StopPass(Exception):
    """Raised by a forward hook that has what it needs: the rest of the pass is not run."""


def token_means(model: nn.Module, modules: dict[str, nn.Module],
                batches: Callable[[], Iterable[dict[str, torch.Tensor]]],
                stat: Callable[[torch.Tensor], torch.Tensor], inputs: bool = True,
                stop: bool = False,
                forward: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, torch.Tensor]:
    """Per module, the sum of `stat(x)` over the calibration batches divided by the number of
    real tokens, where x is (n_tokens, features): the module's first input (`inputs`) or its
    output, padding positions left out. `stop`: end each forward pass once every module has
    been seen (modules called once per pass only: later layers then cost nothing). `forward`
    runs one batch (default: `model(**batch)`); its `attention_mask` still marks the padding.

    In a whole encoder-decoder the decoder's modules see the target: its padding is marked by
    `decoder_attention_mask`. A module is given the mask of the half it belongs to, or the
    other half's where only that one has its shape (the decoder's cross-attention keys and
    values read the source)."""
    sums: dict[str, torch.Tensor | float] = dict.fromkeys(modules, 0.0)
    counts = dict.fromkeys(modules, 0)
    masks: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    decoder = seq2seq_decoder(model)
    inside = {id(m) for m in decoder.modules()} if decoder is not None else set()
    own = {name: (DECODER_MASK, SOURCE_MASK) if id(m) in inside else (SOURCE_MASK, DECODER_MASK)
           for name, m in modules.items()}

    def mask_of(name: str, shape: torch.Size) -> torch.Tensor | None:
        for key in own[name]:
            if key in masks and masks[key].shape == shape:
                return masks[key]
        return None

    def hook(name: str) -> Callable[..., None]:
        def record(_module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            x = (args[0] if inputs else out).detach()
            mask = mask_of(name, x.shape[:-1])
            if mask is not None:
                x = x[mask]  # (n_tokens, features)
            x = x.reshape(-1, x.shape[-1])
            sums[name] = sums[name] + stat(x)
            counts[name] += x.shape[0]
            seen.add(name)
            if stop and len(seen) == len(modules):
                raise StopPass
        return record

    with ExitStack() as stack, torch.no_grad():
        for name, module in modules.items():
            stack.callback(module.register_forward_hook(hook(name)).remove)
        model.eval()
        for batch in batches():
            masks = {k: batch[k].bool() for k in (SOURCE_MASK, DECODER_MASK) if k in batch}
            seen.clear()
            try:
                forward(batch) if forward is not None else model(**batch)
            except StopPass:
                pass
    return {name: sums[name] / max(counts[name], 1) for name in modules}
