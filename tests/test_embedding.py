from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ragline.ingest.pipeline import embed_in_batches
from ragline.providers.local.minilm import MiniLMEmbedder
from ragline.query.retrieval import QueryEmbeddingCache

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))


def test_int8_onnx_matches_the_fp32_reference_model(minilm: MiniLMEmbedder) -> None:
    """The vectors are all-MiniLM-L6-v2's: each within cosine 0.98 of sentence-transformers' fp32 output."""
    items = REFERENCE["items"]
    assert len(items) >= 20
    ours = minilm.embed_batch([item["text"] for item in items])
    reference = np.array([item["vector"] for item in items], dtype=np.float32)
    cosines = np.sum(ours * reference, axis=1) / np.linalg.norm(reference, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.98, f"{items[worst]['text'][:60]!r}: cosine {cosines[worst]:.4f}"
    assert ours.shape == (len(items), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence that needs padding in a batch with short ones " * 3, "mid length text"]
    one_by_one = np.vstack([minilm.embed_batch([t]) for t in texts])
    batched = embed_in_batches(minilm, texts, batch_size=2)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)


def test_token_count_uses_wordpiece(minilm: MiniLMEmbedder) -> None:
    assert minilm.count_tokens("hello world") == 2
    assert minilm.count_tokens("unaffordable") > 1  # split into word pieces


def test_query_cache_hits_skip_the_model(minilm: MiniLMEmbedder) -> None:
    cache = QueryEmbeddingCache(minilm, size=2)
    first = cache.embed("what is lex")
    again = cache.embed("what is lex")
    assert again is first
    assert (cache.hits, cache.misses) == (1, 1)
    cache.embed("b")
    cache.embed("c")  # evicts the oldest
    cache.embed("what is lex")
    assert cache.misses == 4
