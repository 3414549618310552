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
`LayerInputs` keeps each layer's inputs between blocks, so that a block's pass runs its own layer
only, not every layer before it (the reference code's layer-by-layer pass).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from occamtune.compress.calibrate import StopPass, token_means
from occamtune.compress.grid import group_of, group_scales

BLOCK = 128  # columns rounded per lazy batch update (the paper's B)
_LAYER = re.compile(r"^(.*\.layer\.\d+)\.")


def _second_moment(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x.T @ x


def hessians(model: nn.Module, modules: dict[str, nn.Linear],
             batches: Callable[[], Iterable[dict[str, Any]]],
             forward: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, torch.Tensor]:
    """`X^T X / n` of each Linear's inputs over the calibration batches (padding left out)."""
    means = token_means(model, modules, batches, _second_moment, forward=forward)
    return {name: torch.as_tensor(h).float() for name, h in means.items()}


class LayerInputs:
    """The Hessians of one block of Linears at a time, each transformer layer run on its inputs
    as kept from the layer before it.

    Measuring block i by a pass through the whole model runs every layer once per block, n^2
    layer calls for n layers; keeping the inputs of the current layer runs each layer twice per
    batch (once measured, once rounded to give the next layer its inputs). That needs every layer
    called once per pass with the same arguments besides its hidden states (masks, rotary
    tables): true of BERT, Llama or GPT-2, not of T5 (its first layer computes the position bias
    the others take) nor of layers shared across depths. `shared` checks this on one batch; where
    it fails, or for Linears outside the layers (a task head), each block gets its own pass
    through the model, with the same result.
    """

    def __init__(self, model: nn.Module, layers: list[str] | None,
                 batches: Callable[[], Iterable[dict[str, Any]]], keep: bool = True) -> None:
        self.model, self.batches = model, batches
        modules = dict(model.named_modules())
        self.layers = [(name, modules[name]) for name in layers or []]
        self.keep = keep
        self._shared: bool | None = None
        self._at = -1  # the index of the layer whose inputs `_inputs` holds
        self._inputs: list[dict[str, Any]] = []  # per batch: args, kwargs, attention_mask

    def hessians(self, modules: dict[str, nn.Linear]) -> dict[str, torch.Tensor]:
        """`X^T X / n` of the inputs of `modules` (one layer's Linears, or Linears outside the
        layers) with every module before them as it is now."""
        first = next(iter(modules))
        at = next((i for i, (name, _) in enumerate(self.layers)
                   if first.startswith(name + ".")), None)
        if at is None or not self.keep or not self.shared():
            return hessians(self.model, modules, self.batches)
        self._move_to(at)
        layer = self.layers[at][1]
        return hessians(self.model, modules, lambda: self._inputs,
                        forward=lambda entry: layer(*entry["args"], **entry["kwargs"]))

    def shared(self) -> bool:
        """Whether every layer is called once per pass, with the same arguments besides its
        hidden states (checked on the first calibration batch)."""
        if self._shared is None:
            batch = next(iter(self.batches()))
            calls: dict[int, list[tuple[tuple, dict]]] = {i: [] for i in range(len(self.layers))}
            hooks = [layer.register_forward_pre_hook(
                lambda _m, args, kwargs, i=i: calls[i].append(_rest(args, kwargs)), with_kwargs=True)
                for i, (_, layer) in enumerate(self.layers)]
            try:
                with torch.no_grad():
                    self.model.eval()
                    self.model(**batch)
            finally:
                for hook in hooks:
                    hook.remove()
            self._shared = bool(self.layers) and all(len(c) == 1 for c in calls.values()) and all(
                _same(calls[i][0], calls[0][0]) for i in calls)
        return self._shared

    def _move_to(self, at: int) -> None:
        """Hold the inputs of layer `at`: run the layers between on the kept inputs, or, from
        the start, catch them in one pass through the model per batch."""
        if 0 <= self._at <= at:
            for _, layer in self.layers[self._at:at]:
                with torch.no_grad():
                    for entry in self._inputs:
                        out = layer(*entry["args"], **entry["kwargs"])
                        entry["args"], entry["kwargs"] = _with_hidden(
                            entry["args"], entry["kwargs"], out[0] if isinstance(out, tuple) else out)
        else:
            self._inputs = [self._catch(self.layers[at][1], batch) for batch in self.batches()]
        self._at = at

    def _catch(self, layer: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        caught: dict[str, Any] = {}

        def catch(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            caught.update(args=args, kwargs=kwargs)
            raise StopPass

        hook = layer.register_forward_pre_hook(catch, with_kwargs=True)
        try:
            with torch.no_grad():
                self.model.eval()
                self.model(**batch)
        except StopPass:
            pass
        finally:
            hook.remove()
        if "attention_mask" in batch:
            caught["attention_mask"] = batch["attention_mask"]
        return caught


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    """A layer's arguments with its hidden states (the first argument) replaced."""
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _rest(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """A layer's arguments besides its hidden states."""
    return (args[1:], kwargs) if args else (args, {k: v for k, v in kwargs.items()
                                                   if k != "hidden_states"})


def _same(a: Any, b: Any) -> bool:
    """Whether two layers' arguments are equal: tensors by value, containers item by item,
    plain values by `==`; any other object (a cache, say) counts as different, to be safe."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and (a is b or (a.shape == b.shape and bool(torch.equal(a, b)))))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if a is None or isinstance(a, (bool, int, float, str)):
        return type(a) is type(b) and a == b
    return False


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
