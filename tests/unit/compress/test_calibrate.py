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


def test_stop_ends_the_pass_once_every_module_was_seen() -> None:
    """With `stop`, the layers after the measured one never run; the statistic is the same."""
    from tests.fixtures.tiny_models import tiny_batches, tiny_task_model

    model = tiny_task_model()
    layers = model.encoder.encoder.layer
    ran: list[int] = []
    layers[1].register_forward_hook(lambda *_: ran.append(1))
    batches = lambda: tiny_batches()
    total = lambda t: t.sum(dim=0)
    full = token_means(model, {"m": layers[0].output.dense}, batches, total)["m"]
    assert len(ran) == len(tiny_batches())
    ran.clear()
    early = token_means(model, {"m": layers[0].output.dense}, batches, total, stop=True)["m"]
    assert ran == [] and torch.equal(early, full)
