"""Low-rank factorisation picks ranks by energy; sharing ties layers and stores them once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from occamtune.compress import CompressContext, LowRankConfig, ShareConfig, compress, save_artifact
from occamtune.compress.artifact import read_occ
from occamtune.compress.lowrank import LowRankLinear, rank_for_energy
from occamtune.compress.record import record_of
from occamtune.compress.share import split_groups
from tests.fixtures.tiny_models import tiny_context, tiny_task_model


def test_rank_for_energy() -> None:
    s = torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0])  # squares 9 4 1 1 1 = 16
    assert rank_for_energy(s, 9 / 16) == 1
    assert rank_for_energy(s, 0.6) == 2
    assert rank_for_energy(s, 0.9) == 4
    assert rank_for_energy(s, 1.0) == 5
    assert rank_for_energy(s, 0.1, min_rank=3) == 3


def test_lowrank_factorises_a_low_rank_matrix_exactly() -> None:
    model = tiny_task_model(layers=1)
    q = model.encoder.encoder.layer[0].attention.self.query
    with torch.no_grad():
        q.weight.copy_(torch.randn(32, 3) @ torch.randn(3, 32))
    x = torch.randn(5, 32)
    ref = q(x)
    model = compress(model, [LowRankConfig(energy=0.999, min_rank=1)], CompressContext())
    new = model.encoder.encoder.layer[0].attention.self.query
    assert isinstance(new, LowRankLinear) and new[0].out_features == 3
    torch.testing.assert_close(new(x), ref, atol=1e-4, rtol=1e-4)
    assert record_of(model).log()[-1]["params_after"] < record_of(model).log()[-1]["params_before"]


def test_lowrank_skips_when_no_saving() -> None:
    model = compress(tiny_task_model(), [LowRankConfig(energy=1.0)], CompressContext())
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())
    assert all(isinstance(m, nn.Linear) for m in [model.encoder.encoder.layer[0].attention.self.query])


def test_split_groups() -> None:
    assert split_groups(6, 2) == [[0, 1, 2], [3, 4, 5]]
    assert split_groups(5, 2) == [[0, 1, 2], [3, 4]]
    assert split_groups(4, 1) == [[0, 1, 2, 3]]


def test_share_ties_layers_and_stores_them_once(tokenizer, tmp_path) -> None:
    model = tiny_task_model(layers=4)
    mean_q = torch.stack([model.encoder.encoder.layer[i].attention.self.query.weight.detach()
                          for i in (0, 1)]).mean(0)
    ctx = tiny_context()
    ctx.finetune = lambda m, **kw: m  # check the initialisation: no training
    model = compress(model, [ShareConfig(groups=2)], ctx)
    layers = model.encoder.encoder.layer
    assert layers[0] is layers[1] and layers[2] is layers[3] and layers[0] is not layers[2]
    torch.testing.assert_close(layers[0].attention.self.query.weight, mean_q)
    save_artifact(model, tokenizer, tmp_path)
    manifest, _ = read_occ(tmp_path / "model.occ")
    aliases = [t for t in manifest["tensors"] if t["enc"] == "alias"]
    assert len(aliases) == len(list(layers[0].state_dict())) * 2


def test_share_needs_fewer_groups_than_layers() -> None:
    from occamtune.errors import ConfigError

    with pytest.raises(ConfigError, match="groups must be below"):
        compress(tiny_task_model(layers=2), [ShareConfig(groups=2)], tiny_context())
