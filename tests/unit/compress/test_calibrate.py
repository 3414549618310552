"""Calibration statistics are means over real tokens, of a module's input or its output."""

from __future__ import annotations

import torch
from torch import nn

from occamtune.compress.calibrate import token_means


class _Double(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner(input_ids.float())


def test_means_over_real_tokens_of_inputs_and_outputs() -> None:
    model, x = _Double(), torch.tensor([[[1.0, 2.0], [100.0, 100.0]]])  # second token is padding
    batches = lambda: [{"input_ids": x, "attention_mask": torch.tensor([[1, 0]])}]
    total = lambda t: t.sum(dim=0)
    assert token_means(model, {"m": model.inner}, batches, total)["m"].tolist() == [1.0, 2.0]
    root = token_means(model, {"m": model}, batches, total, inputs=False)
    assert root["m"].tolist() == [2.0, 4.0]
