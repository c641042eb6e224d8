"""Retrieval over ragline's own store: vector and BM25 rankings fused (RRF), or the store's own fusion.

OpenSearch's hybrid query fuses in one request where the settings ask for it. Query vectors are cached.

Kendra and knowledge bases are sibling retrievers (``providers/aws``); every retriever scopes to the tenant.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from ragline.errors import InputError
from ragline.seams import Embedder, HybridSearch, Store
from ragline.types import Chunk, Hit, Vectors

MODES = ("hybrid", "vector", "bm25")


def fuse(rankings: Mapping[str, Sequence[Hit]], k: int, rrf_k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: score = Σ 1/(rrf_k + rank) over the rankings that found the chunk."""
    scores: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    chunks: dict[str, Chunk] = {}
    for name, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            cid = hit.chunk.id
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (rrf_k + rank)
            found.setdefault(cid, []).append(name)
            chunks[cid] = hit.chunk
    best = sorted(scores, key=lambda c: (-scores[c], c))[:k]
    return [Hit(chunks[c], scores[c], tuple(found[c])) for c in best]


class QueryEmbeddingCache:
    """An LRU of query vectors in front of an embedder: a repeated question costs no model call."""

    def __init__(self, embedder: Embedder, size: int = 1024) -> None:
        self.embedder = embedder
        self.size = size
        self._items: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed(self, text: str) -> Vectors:
        """The vector of one query."""
        with self._lock:
            if text in self._items:
                self._items.move_to_end(text)
                self.hits += 1
                return self._items[text]
        vector: Vectors = self.embedder.embed_batch([text])[0]
        with self._lock:
            self.misses += 1
            if self.size:
                self._items[text] = vector
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return vector


class StoreRetriever:
    """Hybrid (fused), vector or BM25 search over the store, limited to the tenant.

    ``native`` is the store's own one-request fusion when the settings choose it (OpenSearch's search pipeline);
    single-mode searches still go to the store's vector or text search.
    """

    def __init__(self, store: Store, queries: QueryEmbeddingCache, *, rrf_k: int = 60, fusion_depth: int = 50,
                 native: HybridSearch | None = None) -> None:
        self.store = store
        self.queries = queries
        self.rrf_k = rrf_k
        self.fusion_depth = fusion_depth
        self.native = native

    @property
    def name(self) -> str:
        """``store``, or ``store-native-hybrid`` when the store fuses."""
        return "store" if self.native is None else "store-native-hybrid"

    def retrieve(self, question: str, *, k: int, mode: str, filters: Mapping[str, str], tenant: str) -> list[Hit]:
        """The best ``k`` chunks for the question."""
        if mode not in MODES:
            raise InputError(f"unknown retrieval mode {mode!r}; valid: {', '.join(MODES)}")
        scoped = {**filters, "tenant": tenant}
        if mode == "hybrid" and self.native is not None:
            return self.native.search_hybrid(question, self.queries.embed(question), k, scoped)
        depth = max(k, self.fusion_depth) if mode == "hybrid" else k
        rankings: dict[str, list[Hit]] = {}
        if mode in ("vector", "hybrid"):
            rankings["vector"] = self.store.search_vector(self.queries.embed(question), depth, scoped)
        if mode in ("bm25", "hybrid"):
            rankings["bm25"] = self.store.search_text(question, depth, scoped)
        if mode != "hybrid":
            return next(iter(rankings.values()))[:k]
        return fuse(rankings, k, self.rrf_k)
