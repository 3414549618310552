"""Vocabulary trimming: seen ids keep their vectors, unseen ones fall back to [UNK]."""

from __future__ import annotations

import torch

from occamtune.compress import CompressContext, VocabTrimConfig, compress
from occamtune.compress.vocab import TrimmedEmbedding


def _ctx(counts: dict[int, int]) -> CompressContext:
    from types import SimpleNamespace

    tok = SimpleNamespace(unk_token_id=1, all_special_ids=[0, 1, 2, 3, 4])
    return CompressContext(token_counts=lambda: counts, tokenizer=tok)


def test_trim_keeps_seen_rows_and_maps_unseen_to_unk() -> None:
    from tests.fixtures.tiny_models import tiny_task_model

    model = tiny_task_model()
    old = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    model = compress(model, [VocabTrimConfig(min_count=2, keep_top=8)],
                     _ctx({10: 5, 11: 1, 50: 2, 119: 3}))
    emb = model.encoder.embeddings.word_embeddings
    assert isinstance(emb, TrimmedEmbedding) and emb.remap.dtype == torch.int32
    kept = [0, 1, 2, 3, 4, 5, 6, 7, 10, 50, 119]  # specials, ids < 8, counts >= 2
    assert emb.embedding.num_embeddings == len(kept)
    assert model.compression_log[-1]["rows_kept"] == len(kept)
    ids = torch.tensor([[10, 50, 119, 11, 60]])
    out = emb(ids)
    torch.testing.assert_close(out[0, :3], old[[10, 50, 119]])
    torch.testing.assert_close(out[0, 3], old[1])  # 11 seen once < min_count -> [UNK]
    torch.testing.assert_close(out[0, 4], old[1])
