"""Prequential code length on tiny data with a tiny random encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from occamtune.search.mdl import ProbeConfig, block_ends, online_code, prequential_codelength


def test_block_ends_merge_duplicates_and_end_at_n() -> None:
    assert block_ends(30, (0.001, 0.002, 0.25, 0.5, 1.0)) == [1, 8, 15, 30]
    assert block_ends(1, (0.5, 1.0)) == [1]


def test_ner_codelength_is_finite(conll_tiny, tiny_model_dir) -> None:
    out = prequential_codelength("ner", str(conll_tiny), str(tiny_model_dir),
                                 portions=(0.1, 0.25, 0.5, 1.0), max_length=32)
    assert math.isfinite(out["online_bits"]) and out["online_bits"] > 0
    assert out["uniform_bits"] == pytest.approx(out["labels_coded"] * math.log2(out["num_classes"]))
    assert out["compression"] == pytest.approx(out["uniform_bits"] / out["online_bits"])
    assert sum(b["labels"] for b in out["blocks"]) == out["labels_coded"]
    assert out["blocks"][0]["bits_per_label"] == pytest.approx(math.log2(out["num_classes"]))


def test_classify_codelength_is_finite(sst_tiny, tiny_model_dir) -> None:
    out = prequential_codelength("classify", str(sst_tiny), str(tiny_model_dir), max_sentences=20,
                                 portions=(0.25, 0.5, 1.0))
    assert out["examples"] == 20 and math.isfinite(out["compression"])


def test_separable_data_compresses_well() -> None:
    rng = np.random.default_rng(0)
    ys = [np.array([i % 2]) for i in range(400)]
    xs = [np.array([[2.0 * y[0] - 1.0, rng.normal()]], dtype=np.float32) for y in ys]
    blocks = online_code(xs, ys, 2, block_ends(400, (0.05, 0.25, 1.0)), ProbeConfig())
    online = sum(b["bits"] for b in blocks)
    assert online < 0.2 * 400  # uniform would be 400 bits


def test_portions_are_checked() -> None:
    with pytest.raises(ValueError, match="end at 1.0"):
        prequential_codelength("ner", ".", "x", portions=(0.1, 0.5))


def test_the_penalty_chosen_on_sent_examples_keeps_few_shot_blocks_below_uniform() -> None:
    rng = np.random.default_rng(0)
    ys = [np.array([i % 2]) for i in range(300)]  # weak signal in 1 of 64 noisy dimensions
    xs = [np.concatenate([[0.5 * (2.0 * y[0] - 1.0)], rng.normal(size=63)])[None].astype(np.float32)
          for y in ys]
    ends = block_ends(300, (0.02, 0.05, 0.1, 0.25, 1.0))
    chosen = online_code(xs, ys, 2, ends, ProbeConfig())
    fixed = online_code(xs, ys, 2, ends, ProbeConfig(l2=1e-3))
    assert all(b["l2"] is not None for b in chosen[1:])
    assert sum(b["bits"] for b in chosen) < sum(b["bits"] for b in fixed)
    assert sum(b["bits"] for b in chosen) < 300  # better than the uniform code
