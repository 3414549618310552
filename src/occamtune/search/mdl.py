"""Prequential (online) description length of a labelled data set under a frozen pretrained encoder.

After Voita & Titov (2020), "Information-Theoretic Probing with Minimum Description Length": the
training examples are put in a fixed random order and cut into blocks at growing portions
(0.1%, 0.2%, ..., 50%, 100%). The first block is sent with the uniform code, log2(K) bits per label.
Every later block is sent with a probe trained on all the examples before it: -log2 p(label) bits
per label. The sum is the online code length; uniform / online is the compression. An encoder whose
features make the labels easier to learn from few examples compresses the data more, which lets
two pretrained models be compared on a task before fine-tuning either.

As in the paper, the encoder is frozen and the probe is linear. Here the probe is a multinomial
logistic regression on standardised features with an L2 penalty, fitted by L-BFGS (convex,
deterministic). The penalty matters: a probe fitted on a few dozen examples with a fixed small
penalty separates them perfectly and then codes the next block with confident mistakes, worse than
the uniform code (as seen on SST-2 with a fixed l2 = 1e-3). So by default
each block chooses its penalty from `L2_GRID`, fitting on the first 90% of the examples already
sent and scoring the last 10% (the choice uses only sent data, so the code stays decodable), then
refits on all of them. NER labels each word through the vector of its first sub-word;
classification codes each text through its mean-pooled vector.

    prequential_codelength("ner", "data/conll2003", "minilm")["compression"]
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

PORTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclass
class ProbeConfig:
    """The linear probe: L2 penalty on the weights (None: chosen per block from `L2_GRID` on
    held-out sent examples) and L-BFGS iterations."""

    l2: float | None = None
    max_iter: int = 100

    def __post_init__(self) -> None:
        if self.l2 is not None and self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


def prequential_codelength(task: str, data_folder: str, model_name: str,
                           portions: tuple[float, ...] = PORTIONS, max_sentences: int | None = None,
                           seed: int = 13, max_length: int | None = None, batch_size: int = 64,
                           probe: ProbeConfig | None = None) -> dict[str, Any]:
    """Online code length (bits) of the training split's labels given the encoder's features.

    Args:
        task: a registered task's name (its `probe_vectors` says what is coded: one label per
            word for NER, one per text for classification).
        data_folder: a folder with a training file (train/dev/test are found as for `train`).
        model_name: "minilm" or a Hugging Face model folder.
        portions: increasing fractions of the examples at which blocks end; the last must be 1.
        max_sentences: use only this many examples (after the seeded shuffle).
        seed: order of the examples.
        max_length: sub-word budget per input (longer NER sentences are windowed); None: the
            training default (`DataConfig.max_length`).
        batch_size: encoder batch size.
        probe: probe settings.

    Returns:
        online_bits, uniform_bits, compression (uniform / online), bits_per_label, the block table
        (start, end, examples, labels, bits) and the settings used.
    """
    _check_portions(portions)
    start = time.perf_counter()
    xs, ys, labels = frozen_features(task, data_folder, model_name, max_sentences, seed,
                                     max_length, batch_size)
    blocks = online_code(xs, ys, len(labels), block_ends(len(xs), portions), probe or ProbeConfig())
    online = sum(b["bits"] for b in blocks)
    n_labels = sum(len(y) for y in ys)
    uniform = n_labels * math.log2(len(labels))
    return {"task": task, "data": str(data_folder), "model": model_name, "examples": len(xs),
            "labels_coded": n_labels, "num_classes": len(labels), "online_bits": online,
            "uniform_bits": uniform, "compression": uniform / online if online > 0 else math.inf,
            "bits_per_label": online / max(n_labels, 1), "blocks": blocks,
            "probe": f"linear, L-BFGS, l2={_l2_name(probe or ProbeConfig())}",
            "seed": seed,
            "seconds": time.perf_counter() - start}


def _l2_name(probe: ProbeConfig) -> str:
    return "chosen per block" if probe.l2 is None else f"{probe.l2:g}"


def _check_portions(portions: tuple[float, ...]) -> None:
    if not portions or any(b <= a for a, b in itertools.pairwise(portions)):
        raise ValueError(f"portions must be strictly increasing, got {portions}")
    if portions[0] <= 0 or abs(portions[-1] - 1.0) > 1e-9:
        raise ValueError(f"portions must lie in (0, 1] and end at 1.0, got {portions}")


def block_ends(n: int, portions: tuple[float, ...]) -> list[int]:
    """Exclusive end index of each block; duplicates (tiny data) are merged, the last is n."""
    ends: list[int] = []
    for p in portions:
        end = min(n, max(1, round(p * n)))
        if not ends or end > ends[-1]:
            ends.append(end)
    return ends


def frozen_features(task_name: str, data_folder: str, model_name: str, max_sentences: int | None,
                    seed: int, max_length: int | None, batch_size: int
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Per example: features (N_i, H) and label ids (N_i,), in a seeded random order."""
    from occamtune.config import DataConfig
    from occamtune.models import load_encoder, load_tokenizer
    from occamtune.tasks import get_task
    from occamtune.train.prepare import read_splits

    task = get_task(task_name)
    data = DataConfig(path=str(data_folder), **({"max_length": max_length} if max_length else {}))
    dataset = read_splits(task, data)["train"].dataset
    labels = task.label_set(dataset)
    order = np.random.default_rng(seed).permutation(len(dataset.items)).tolist()
    dataset = dataset.with_items([dataset.items[i] for i in order[:max_sentences]])
    tokenizer = load_tokenizer(model_name, task_name)
    encoder = load_encoder(model_name).eval()
    feats = task.encode(dataset, tokenizer, labels, data)
    pad = int(getattr(encoder.config, "pad_token_id", 0) or 0)
    xs, ys = task.probe_vectors(_batches(task, encoder, feats, pad, batch_size), feats, dataset)
    return xs, ys, labels


def _batches(task: Any, encoder: nn.Module, feats: list[Any], pad_id: int, batch_size: int):
    """Yield (feature indices, last hidden state (B, T, H), batch) over length-sorted batches."""
    collate = task.collator(pad_id)
    order = sorted(range(len(feats)), key=lambda i: task.feature_length(feats[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([feats[i] for i in idx])
            out = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            yield idx, out.last_hidden_state.float(), batch


def online_code(xs: list[np.ndarray], ys: list[np.ndarray], num_classes: int, ends: list[int],
                probe: ProbeConfig) -> list[dict[str, Any]]:
    """Bits of each block: uniform for the first, then a probe fitted on everything before it."""
    blocks, start = [], 0
    for end in ends:
        y_block = np.concatenate(ys[start:end])
        l2 = None
        if start == 0:
            bits = len(y_block) * math.log2(num_classes)
        else:
            l2 = probe.l2 if probe.l2 is not None else choose_l2(xs[:start], ys[:start],
                                                                 num_classes, probe)
            weights = fit_probe(np.concatenate(xs[:start]), np.concatenate(ys[:start]),
                                num_classes, l2, probe.max_iter)
            bits = code_bits(weights, np.concatenate(xs[start:end]), y_block)
        blocks.append({"start": start, "end": end, "examples": end - start,
                       "labels": len(y_block), "bits": float(bits),
                       "bits_per_label": float(bits) / max(len(y_block), 1), "l2": l2})
        start = end
    return blocks


@dataclass
class Probe:
    """A fitted linear probe: standardisation statistics and the linear layer."""

    mean: torch.Tensor  # (H,)
    std: torch.Tensor  # (H,)
    linear: nn.Linear  # H -> K

    def log_probs(self, x: np.ndarray) -> torch.Tensor:
        z = (torch.from_numpy(x) - self.mean) / self.std  # (N, H)
        return torch.log_softmax(self.linear(z), dim=-1)  # (N, K)


def choose_l2(xs: list[np.ndarray], ys: list[np.ndarray], num_classes: int,
              probe: ProbeConfig) -> float:
    """The penalty of `L2_GRID` whose probe, fitted on the first 90% of the examples, codes the
    last 10% in the fewest bits (the largest penalty when there are too few examples to split)."""
    n_fit = len(xs) - max(1, len(xs) // 10)
    if n_fit < 1:
        return L2_GRID[-1]
    x_fit, y_fit = np.concatenate(xs[:n_fit]), np.concatenate(ys[:n_fit])
    x_val, y_val = np.concatenate(xs[n_fit:]), np.concatenate(ys[n_fit:])
    bits = {l2: code_bits(fit_probe(x_fit, y_fit, num_classes, l2, probe.max_iter), x_val, y_val)
            for l2 in L2_GRID}
    return min(bits, key=bits.get)


def fit_probe(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, max_iter: int) -> Probe:
    """Multinomial logistic regression on standardised features (statistics from `x` only), with
    penalty `l2` on the weights, `max_iter` L-BFGS iterations."""
    torch.manual_seed(0)
    xt = torch.from_numpy(x)
    mean, std = xt.mean(0), xt.std(0, unbiased=False).clamp(min=1e-6)
    z, target = (xt - mean) / std, torch.from_numpy(y)
    linear = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(z), target) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Probe(mean, std, linear)


def code_bits(probe: Probe, x: np.ndarray, y: np.ndarray) -> float:
    """Sum of -log2 p(y | x) under the probe."""
    with torch.no_grad():
        lp = probe.log_probs(x)
        return float(-lp[torch.arange(len(y)), torch.from_numpy(y)].sum() / math.log(2))
