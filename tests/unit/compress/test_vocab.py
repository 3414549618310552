"""Vocabulary trimming: seen ids keep their vectors, unseen ones fall back to [UNK] or low rank."""

from __future__ import annotations

import pytest
import torch

from occamtune.compress import CompressContext, VocabTrimConfig, compress
from occamtune.compress.record import record_of
from occamtune.compress.vocab import TrimmedEmbedding


def _ctx(counts: dict[int, int]) -> CompressContext:
    from types import SimpleNamespace

    tok = SimpleNamespace(unk_token_id=1, all_special_ids=[0, 1, 2, 3, 4])
    return CompressContext(token_counts=lambda: counts, tokenizer=tok)


def test_trim_keeps_seen_rows_and_maps_unseen_to_unk() -> None:
    from tests.fixtures.tiny_models import tiny_task_model

    model = tiny_task_model()
    old = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    model = compress(model, [VocabTrimConfig(min_count=2, keep_top=8, rank=0)],
                     _ctx({10: 5, 11: 1, 50: 2, 119: 3}))
    emb = model.encoder.embeddings.word_embeddings
    assert isinstance(emb, TrimmedEmbedding) and emb.remap.dtype == torch.int32
    kept = [0, 1, 2, 3, 4, 5, 6, 7, 10, 50, 119]  # specials, ids < 8, counts >= 2
    assert emb.embedding.num_embeddings == len(kept)
    assert record_of(model).log()[-1]["rows_kept"] == len(kept)
    ids = torch.tensor([[10, 50, 119, 11, 60]])
    out = emb(ids)
    torch.testing.assert_close(out[0, :3], old[[10, 50, 119]])
    torch.testing.assert_close(out[0, 3], old[1])  # 11 seen once < min_count -> [UNK]
    torch.testing.assert_close(out[0, 4], old[1])


def test_dropped_rows_fall_back_to_their_principal_projection(tmp_path) -> None:
    from occamtune.compress import save_artifact
    from occamtune.models import load_model
    from tests.fixtures.tiny import tiny_tokenizer
    from tests.fixtures.tiny_models import tiny_task_model

    model = tiny_task_model()
    old = model.encoder.embeddings.word_embeddings.weight.detach().clone()  # (120, 32)
    model = compress(model, [VocabTrimConfig(rank=4)], _ctx({10: 5, 50: 2}))
    emb = model.encoder.embeddings.word_embeddings
    assert emb.embedding.num_embeddings == 7 and emb.fallback.weight.shape == (113, 4)
    assert record_of(model).log()[-1]["low_rank_rows"] == 113
    mean = old.mean(0)
    _, _, vh = torch.linalg.svd(old - mean, full_matrices=False)
    expected = mean + (old[[11, 60]] - mean) @ vh[:4].T @ vh[:4]  # rank-4 projection
    out = emb(torch.tensor([[10, 11, 60, 50]]))
    torch.testing.assert_close(out[0, [0, 3]], old[[10, 50]])
    torch.testing.assert_close(out[0, 1:3], expected, atol=1e-5, rtol=1e-4)
    err_low = (out[0, 1:3] - old[[11, 60]]).norm()
    err_unk = (old[[1, 1]] - old[[11, 60]]).norm()
    assert err_low < err_unk  # closer to the true rows than [UNK]
    save_artifact(model, tiny_tokenizer(tmp_path / "tok"), tmp_path / "a", codec="none",
                  half_floats=False)
    loaded, _, _ = load_model(tmp_path / "a")
    torch.testing.assert_close(loaded.encoder.embeddings.word_embeddings(torch.tensor([[10, 11, 60, 50]])), out)


def test_rank_is_capped_at_half_the_embedding_size() -> None:
    from tests.fixtures.tiny_models import tiny_task_model

    model = compress(tiny_task_model(), [VocabTrimConfig(rank=64)], _ctx({10: 5}))
    assert model.encoder.embeddings.word_embeddings.fallback.weight.shape == (114, 16)  # 120 - 5 specials - id 10


def test_positions_keeps_the_rows_the_run_reads_and_reloads(tmp_path) -> None:
    from occamtune.compress import save_artifact
    from occamtune.errors import ConfigError
    from occamtune.models import check_max_length, load_model
    from tests.fixtures.tiny import tiny_tokenizer
    from tests.fixtures.tiny_models import tiny_task_model

    model = tiny_task_model()
    model.eval()
    ids = torch.tensor([[2, 10, 50, 11, 3]])
    before = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    full = model.encoder.embeddings.position_embeddings.num_embeddings
    ctx = _ctx({10: 5, 50: 2, 11: 1})
    ctx.max_length = 16
    assert full > 16
    model = compress(model, [VocabTrimConfig(rank=4, positions=True)], ctx)
    emb = model.encoder.embeddings
    assert emb.position_embeddings.num_embeddings == 16 == model.encoder.config.max_position_embeddings
    assert record_of(model).log()[-1]["positions_kept"] == 16
    after = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    torch.testing.assert_close(after, before)  # seen ids, positions < 16: the same outputs
    save_artifact(model, tiny_tokenizer(tmp_path / "tok"), tmp_path / "a", codec="none",
                  half_floats=False)
    loaded, _, _ = load_model(tmp_path / "a")
    assert loaded.encoder.embeddings.position_embeddings.num_embeddings == 16
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=torch.ones_like(ids)), after)
    check_max_length(loaded, 16, "a")
    with pytest.raises(ConfigError, match="at most 16"):
        check_max_length(loaded, 17, "a")


def test_positions_needs_the_runs_max_length() -> None:
    from occamtune.errors import ConfigError
    from tests.fixtures.tiny_models import tiny_task_model

    with pytest.raises(ConfigError, match="max_length"):
        compress(tiny_task_model(), [VocabTrimConfig(positions=True)], _ctx({10: 5}))


def test_positions_on_an_encoder_without_an_absolute_table_is_a_no_op() -> None:
    from occamtune.compress.vocab import trim_positions
    from tests.fixtures.tiny_models import tiny_task_model

    model = tiny_task_model()
    model.encoder.config.position_embedding_type = "relative_key"  # no table to cut
    rows = model.encoder.embeddings.position_embeddings.num_embeddings
    assert trim_positions(model, 16) == 0
    assert model.encoder.embeddings.position_embeddings.num_embeddings == rows


@pytest.mark.parametrize("rank", [0, 4])
def test_the_id_map_is_saved_as_a_mask_and_old_artifacts_still_load(rank: int, tmp_path) -> None:
    from occamtune.compress import load_artifact, save_artifact
    from occamtune.compress.artifact import read_occ
    from tests.fixtures.tiny import tiny_tokenizer
    from tests.fixtures.tiny_models import tiny_task_model

    tok = tiny_tokenizer(tmp_path / "tok")
    model = compress(tiny_task_model(), [VocabTrimConfig(rank=rank)], _ctx({10: 5, 50: 2}))
    emb = model.encoder.embeddings.word_embeddings
    ids = torch.tensor([[10, 11, 60, 50, 1]])
    save_artifact(model, tok, tmp_path / "new")
    manifest, _ = read_occ(tmp_path / "new" / "model.occ")
    assert not any(e["name"].endswith("remap") for e in manifest["tensors"])
    assert "kept" in manifest["structure"][-1]
    loaded = load_artifact(tmp_path / "new").encoder.embeddings.word_embeddings
    assert torch.equal(loaded.remap, emb.remap) and int(emb.remap[11]) == (7 + 5 if rank else 1)  # after ids 5-9
    torch.testing.assert_close(loaded(ids), emb(ids), atol=2e-3, rtol=2e-3)
    # the format before the mask: the map saved with the weights, the record without it
    emb._non_persistent_buffers_set.discard("remap")
    record_of(model).structure = [{k: v for k, v in r.items() if k not in ("kept", "unk_row")}
                                  for r in record_of(model).structure]
    save_artifact(model, tok, tmp_path / "old")
    manifest, _ = read_occ(tmp_path / "old" / "model.occ")
    assert any(e["name"].endswith("remap") for e in manifest["tensors"])
    loaded = load_artifact(tmp_path / "old").encoder.embeddings.word_embeddings
    assert torch.equal(loaded.remap, emb.remap)
    torch.testing.assert_close(loaded(ids), emb(ids), atol=2e-3, rtol=2e-3)
