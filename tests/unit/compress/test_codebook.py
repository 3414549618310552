"""Product-quantized word embeddings: k-means finds the clusters, the codes decode to the
centroids, and the method composes with vocabulary trimming and the artifact."""

from __future__ import annotations

import pytest
import torch

from occamtune.compress import (
    CodebookConfig,
    QuantizeConfig,
    VocabTrimConfig,
    compress,
    load_artifact,
    save_artifact,
)
from occamtune.compress.base import CompressContext
from occamtune.compress.codebook import CodebookEmbedding, _row_weights, kmeans
from occamtune.compress.record import record_of
from occamtune.errors import ConfigError
from tests.fixtures.tiny_models import tiny_batches, tiny_context, tiny_task_model


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    label = torch.arange(300) % 3
    x = (centres[label] + 0.1 * torch.randn(300, 2, generator=g)).unsqueeze(0)  # one sub-space
    found, assign = kmeans(x, 3, iters=20, start=torch.tensor([0, 3, 1]))
    for k in range(3):  # each true cluster is one found cluster, centred where it should be
        members = assign[0, label == k]
        assert (members == members[0]).all()
        assert torch.allclose(found[0, members[0]], centres[k], atol=0.05)


def test_weighted_kmeans_serves_the_heavy_points() -> None:
    # one centroid for three points: uniform weights put it at their mean, a point that weighs
    # 98 of 100 pulls it to within 2% of the way to the others
    x = torch.tensor([[[0.0], [10.0], [20.0]]])
    uniform, _ = kmeans(x, 1, iters=3, start=torch.tensor([1]))
    heavy, _ = kmeans(x, 1, iters=3, start=torch.tensor([1]), weights=torch.tensor([98.0, 1.0, 1.0]))
    assert uniform.item() == pytest.approx(10.0)
    assert heavy.item() == pytest.approx(0.3)


def test_row_weights_follow_token_counts_through_a_trimmed_vocabulary() -> None:
    model = compress(tiny_task_model(), [VocabTrimConfig(rank=0)], tiny_context(train=False))
    words = model.encoder.embeddings.word_embeddings
    ctx = CompressContext(token_counts=lambda: {int(words.remap.nonzero()[0]): 7, 10**6: 3})
    rows = words.embedding.num_embeddings
    weights = _row_weights(words, rows, ctx)
    row = int(words.remap[int(words.remap.nonzero()[0])])
    assert weights[row] == 8.0  # 1 + its count; an id outside the vocabulary is ignored
    assert weights.sum() == rows + 7


def test_weighted_codebook_is_closer_on_frequent_tokens() -> None:
    ctx = tiny_context(train=False)
    counts = ctx.token_counts()
    ids = torch.tensor(sorted(counts, key=counts.get, reverse=True)[:5])  # the most frequent
    errors = {}
    for weighting in ("count", "uniform"):
        model = tiny_task_model()
        before = model.encoder.embeddings.word_embeddings.weight[ids].detach().clone()
        model = compress(model, [CodebookConfig(size=4, weighting=weighting)], ctx)
        after = model.encoder.embeddings.word_embeddings.weight[ids].detach()
        errors[weighting] = float((after - before).pow(2).sum())
    assert errors["count"] < errors["uniform"]


def test_rows_decode_to_their_centroids() -> None:
    emb = CodebookEmbedding(rows=3, dim=2, subspaces=2, size=4)
    with torch.no_grad():
        emb.codebooks.copy_(torch.arange(16.0).view(2, 4, 2))
        emb.codes.copy_(torch.tensor([[0, 3], [1, 1], [2, 0]], dtype=torch.uint8))
    assert emb.weight.tolist() == [[0, 1, 14, 15], [2, 3, 10, 11], [4, 5, 8, 9]]
    assert emb(torch.tensor([[2, 0]])).tolist() == [[[4, 5, 8, 9], [0, 1, 14, 15]]]


def test_as_many_centroids_as_rows_is_exact() -> None:
    model = tiny_task_model()
    batch = tiny_batches(n=1)[0]
    before = model.eval()(**batch)
    rows = model.encoder.embeddings.word_embeddings.num_embeddings
    small = compress(model, [CodebookConfig(dim=8, size=min(256, rows))], tiny_context(train=False))
    assert rows <= 256
    torch.testing.assert_close(small.eval()(**batch), before)


def test_after_vocab_codes_the_kept_rows_and_reloads(tokenizer, tmp_path) -> None:
    model = compress(tiny_task_model(), [VocabTrimConfig(rank=4), CodebookConfig(size=8)],
                     tiny_context(train=False))
    words = model.encoder.embeddings.word_embeddings
    assert isinstance(words.embedding, CodebookEmbedding) and words.fallback is not None
    assert words.embedding.codebooks.shape == (8, 8, 4)  # 32 wide: 8 sub-spaces of 4, 8 centroids
    batch = tiny_batches(n=1, seed=3)[0]
    save_artifact(model, tokenizer, tmp_path / "a")
    loaded = load_artifact(tmp_path / "a")
    torch.testing.assert_close(loaded(**batch), model.eval()(**batch), atol=2e-3, rtol=2e-3)


def test_fallback_dim_codes_the_dropped_rows_too_and_reloads(tokenizer, tmp_path) -> None:
    model = compress(tiny_task_model(), [VocabTrimConfig(rank=4),
                                         CodebookConfig(size=8, fallback_dim=2)],
                     tiny_context(train=False))
    words = model.encoder.embeddings.word_embeddings
    assert isinstance(words.embedding, CodebookEmbedding)
    assert isinstance(words.fallback, CodebookEmbedding)
    assert words.fallback.codebooks.shape == (2, 8, 2)  # rank 4: 2 sub-spaces of 2, 8 centroids
    dropped = int((words.remap >= words.embedding.num_embeddings).nonzero()[0])
    row = int(words.remap[dropped]) - words.embedding.num_embeddings
    expected = words.basis(words.fallback.codebooks[torch.arange(2), words.fallback.codes[row].long()]
                           .flatten())
    torch.testing.assert_close(words(torch.tensor([dropped]))[0], expected)
    info = record_of(model).log()[-1]
    assert info["fallback_rows"] == words.fallback.num_embeddings and info["fallback_error"] > 0
    batch = tiny_batches(n=1, seed=3)[0]
    save_artifact(model, tokenizer, tmp_path / "a")
    loaded = load_artifact(tmp_path / "a")
    assert isinstance(loaded.encoder.embeddings.word_embeddings.fallback, CodebookEmbedding)
    torch.testing.assert_close(loaded(**batch), model.eval()(**batch), atol=2e-3, rtol=2e-3)


def test_centroid_bits_store_the_centroids_as_codes(tokenizer, tmp_path) -> None:
    from occamtune.compress.artifact import read_occ

    def build(bits):
        return compress(tiny_task_model(), [VocabTrimConfig(rank=4),
                                            CodebookConfig(size=8, centroid_bits=bits)],
                        tiny_context(train=False))

    full, coded = build(None), build(4)
    centroids = coded.encoder.embeddings.word_embeddings.embedding.codebooks
    exact = full.encoder.embeddings.word_embeddings.embedding.codebooks
    assert not torch.equal(centroids, exact)  # 4-bit centroids, 15 levels a sub-space
    for s in range(8):  # each sub-space: one scale, at most 15 distinct values
        assert centroids[s].unique().numel() <= 15
    torch.testing.assert_close(centroids, exact, atol=0.25 * exact.abs().max().item(), rtol=0)
    save_artifact(coded, tokenizer, tmp_path / "q")
    save_artifact(full, tokenizer, tmp_path / "f")
    manifest, _ = read_occ(tmp_path / "q" / "model.occ")
    entry = next(e for e in manifest["tensors"] if e["name"].endswith("embedding.codebooks"))
    assert entry["enc"] == "quant" and entry["bits"] == 4 and entry["codes_shape"] == [8, 32]
    loaded = load_artifact(tmp_path / "q")
    torch.testing.assert_close(loaded.encoder.embeddings.word_embeddings.embedding.codebooks,
                               centroids)
    batch = tiny_batches(n=1, seed=3)[0]
    torch.testing.assert_close(loaded(**batch), coded.eval()(**batch), atol=2e-3, rtol=2e-3)
    save_artifact(loaded, tokenizer, tmp_path / "again")  # the codes survive a reload
    assert (tmp_path / "again" / "model.occ").read_bytes() == (tmp_path / "q" / "model.occ").read_bytes()


def test_centroid_codes_survive_quantization_aware_training(tokenizer, tmp_path) -> None:
    """QAT trains the centroids too; they are rounded again to their own bits, not left as
    fp16 numbers in the artifact."""
    from occamtune.compress.artifact import read_occ

    coded = [VocabTrimConfig(rank=4), CodebookConfig(size=8, centroid_bits=4)]
    before = compress(tiny_task_model(), coded, tiny_context(train=False))
    model = compress(tiny_task_model(), [*coded, QuantizeConfig(bits=4, group_size=8, epochs=2)],
                     tiny_context())
    centroids = model.encoder.embeddings.word_embeddings.embedding.codebooks
    assert not torch.equal(centroids, before.encoder.embeddings.word_embeddings.embedding.codebooks)
    for s in range(8):  # trained, then 4-bit again: at most 15 values a sub-space
        assert centroids[s].unique().numel() <= 15
    save_artifact(model, tokenizer, tmp_path / "q")
    manifest, _ = read_occ(tmp_path / "q" / "model.occ")
    entry = next(e for e in manifest["tensors"] if e["name"].endswith("embedding.codebooks"))
    assert entry["enc"] == "quant" and entry["bits"] == 4
    batch = tiny_batches(n=1, seed=3)[0]
    loaded = load_artifact(tmp_path / "q")
    torch.testing.assert_close(loaded(**batch), model.eval()(**batch), atol=2e-3, rtol=2e-3)


def test_fallback_dim_without_low_rank_rows_is_a_no_op() -> None:
    model = compress(tiny_task_model(), [VocabTrimConfig(rank=0),
                                         CodebookConfig(size=8, fallback_dim=2)],
                     tiny_context(train=False))
    assert model.encoder.embeddings.word_embeddings.fallback is None
    assert "fallback_rows" not in record_of(model).log()[-1]


@pytest.mark.parametrize("configs, needle", [
    ([VocabTrimConfig(rank=4), CodebookConfig(fallback_dim=3)],
     "fallback_dim must divide the vocabulary's rank 4"),
    ([CodebookConfig(dim=5)], "must divide the embedding width 32"),
    ([CodebookConfig(), VocabTrimConfig()], "put `vocab` before `codebook`"),
    ([CodebookConfig(), CodebookConfig()], "already coded"),
])
def test_misuse_is_a_config_error(configs, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        compress(tiny_task_model(), configs, tiny_context(train=False))


def test_weighting_is_checked_and_count_needs_token_counts() -> None:
    with pytest.raises(ConfigError, match="weighting must be one of count, uniform"):
        CodebookConfig(weighting="zipf")
    with pytest.raises(ConfigError, match='needs token counts.*weighting="uniform"'):
        compress(tiny_task_model(), [CodebookConfig(size=8)], CompressContext())
    compress(tiny_task_model(), [CodebookConfig(size=8, weighting="uniform")], CompressContext())
