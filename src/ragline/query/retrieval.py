"""Retrieval over ragline's own store: vector and BM25 rankings fused (RRF), or the store's own fusion.

OpenSearch's hybrid query fuses in one request where the settings ask for it. Query vectors are cached.

Kendra and knowledge bases are sibling retrievers (``providers/aws``); every retriever scopes to the tenant.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from ragline.errors import InputError
from ragline.seams import Embedder, HybridSearch, Store
from ragline.types import Chunk, Hit, Message, Vectors

MODES = ("hybrid", "vector", "bm25")
# A question that points back ("and how do I delete it?") needs the conversation to be searched for.
_POINTS_BACK = re.compile(r"\b(it|its|it's|this|that|these|those|they|them|their|there|one|ones|same|also)\b|"
                          r"^\s*(and|or|but|so|what about|how about|then)\b", re.IGNORECASE)
_STOP = frozenset(
    [
        "a", "an", "the", "is", "are", "was", "were", "be", "been", "do", "does", "did", "can", "could", "should",
        "would", "will", "i", "you", "we", "they", "it", "its", "this", "that", "these", "those", "of", "to", "in",
        "on", "for", "with", "by", "from", "at", "as", "and", "or", "how", "what", "which", "who", "when", "where",
        "why", "my", "your", "me", "us", "them", "if", "must", "may", "might", "have", "has", "had", "need", "there",
        "any", "some", "about", "into", "use", "using",
    ])
FUSIONS = ("rrf-firsts", "adaptive", "rrf", "convex")
# BM25 counts in full when its best score is at least this multiple of its 10th best; at 1x (flat) it counts nothing.
BM25_SHARP = 1.8
BM25_SHARP_AT = 10


def fuse(rankings: Mapping[str, Sequence[Hit]], k: int, rrf_k: int = 60, *,
         keep_vector_first: bool = False) -> list[Hit]:
    """Reciprocal rank fusion: score = Σ 1/(rrf_k + rank) over the rankings that found the chunk.

    ``keep_vector_first``: the vector search's first hit stays among the ``k`` (in the last place) even when RRF
    ranked it lower: RRF alone buries a strong single-ranker hit (the definition of "Amazon Lex" came 18th because
    BM25 could not tell the guide's chunks apart). Keeping BM25's first hit too was measured and cost 3 of 195 SEC
    questions their gold page.
    """
    scores: dict[str, float] = {}
    found: dict[str, list[str]] = {}
    chunks: dict[str, Chunk] = {}
    for name, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            cid = hit.chunk.id
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (rrf_k + rank)
            found.setdefault(cid, []).append(name)
            chunks[cid] = hit.chunk
    best = _keep_first(sorted(scores, key=lambda c: (-scores[c], c))[:k], rankings, k, keep_vector_first)
    return [Hit(chunks[c], scores[c], tuple(found[c])) for c in best]


def bm25_weight(text: Sequence[Hit], sharp: float = BM25_SHARP, at: int = BM25_SHARP_AT) -> float:
    """How well BM25 tells the chunks apart for this question, from 0 (flat) to 1.

    Its best score over its ``at``-th best: 1x when every chunk shares the question's words ("Amazon Lex" in the
    Lex guide, a company's name in its own filings), ``sharp``x or more when a few chunks hold its rarer words.
    Fewer than ``at`` hits means BM25 matched few chunks: it discriminates, and counts in full.
    """
    if len(text) < at or text[at - 1].score <= 0:
        return 1.0
    return max(0.0, min(1.0, (text[0].score / text[at - 1].score - 1.0) / (sharp - 1.0)))


def fuse_convex(rankings: Mapping[str, Sequence[Hit]], k: int, alpha: float = 0.5, depth: int = 0, *,
                adaptive: bool = False, keep_vector_first: bool = False) -> list[Hit]:
    """Convex fusion of scores: ``alpha`` × cosine + (1 − ``alpha``) × BM25 / the best BM25 score.

    BM25 is divided by its best score, not stretched to [0, 1]: when every chunk shares the question's terms
    (BM25 is flat, as for "What is Amazon Lex?" in the Lex guide) it barely moves the order, and the vector
    ranking decides; when BM25 discriminates, it counts in full. A chunk one ranking did not return gets that
    ranking's lowest returned score (it scored at most that), or 0 when the ranking returned fewer than ``depth``
    (it found nothing else: BM25 matched no word of the question).

    ``adaptive``: BM25's weight is ``1 − alpha`` times ``bm25_weight`` (query by query: a flat BM25 ranking
    weighs little). ``keep_vector_first``: the vector search's first hit stays among the ``k``, in the last place.
    """
    text = rankings.get("bm25", ())
    if adaptive:
        alpha = 1.0 - (1.0 - alpha) * bm25_weight(text)
    vector = {h.chunk.id: 2.0 * h.score - 1.0 for h in rankings.get("vector", ())}  # the store's (1 + cos) / 2
    best = max((h.score for h in text), default=0.0)
    bm25 = {h.chunk.id: h.score / best for h in text} if best > 0 else {}
    chunks = {h.chunk.id: h.chunk for hits in rankings.values() for h in hits}
    v_floor = min(vector.values(), default=0.0) if len(vector) >= depth else 0.0
    b_floor = min(bm25.values(), default=0.0) if len(bm25) >= depth else 0.0
    found_in = {name: {h.chunk.id for h in hits} for name, hits in rankings.items()}
    found = {cid: tuple(name for name, ids in found_in.items() if cid in ids) for cid in chunks}
    scores = {cid: alpha * vector.get(cid, v_floor) + (1 - alpha) * bm25.get(cid, b_floor) for cid in chunks}
    best_ids = sorted(scores, key=lambda c: (-scores[c], c))[:k]
    return [Hit(chunks[c], scores[c], found[c]) for c in _keep_first(best_ids, rankings, k, keep_vector_first)]


def _keep_first(best: list[str], rankings: Mapping[str, Sequence[Hit]], k: int, keep: bool) -> list[str]:
    """``best``, with the vector search's first hit in the last place when ``keep`` and it was left out."""
    vector = rankings.get("vector")
    if keep and vector and k > 1 and vector[0].chunk.id not in best:
        return [*best[: k - 1], vector[0].chunk.id]
    return best


def search_text(question: str, history: Sequence[Message]) -> str:
    """What to search for: the question, and for a follow-up that points back, the previous question's words.

    "and how do I delete it?" after "How do I create a bot?" searches "and how do I delete it? create bot": the
    embedding and BM25 both see what "it" is. A question that stands alone is searched as it is.
    """
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    if not previous or not _POINTS_BACK.search(question):
        return question
    words = [w for w in re.findall(r"[\w\-.]+", previous) if w.lower() not in _STOP]
    return f"{question} {' '.join(dict.fromkeys(words))}".strip()


class QueryEmbeddingCache:
    """An LRU of vectors in front of an embedder: a repeated question (or passage sentence) costs no model call."""

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

    def embed_many(self, texts: Sequence[str]) -> Vectors:
        """The vectors of several texts, in one model call for those not cached."""
        with self._lock:
            found = {t: self._items[t] for t in dict.fromkeys(texts) if t in self._items}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self.embedder.embed_batch(missing), strict=True))
        with self._lock:
            self.hits += len(texts) - len(missing)
            self.misses += len(missing)
            if self.size:
                for text in missing:
                    self._items[text] = found[text]
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.stack([found[t] for t in texts])


class StoreRetriever:
    """Hybrid (fused), vector or BM25 search over the store, limited to the tenant.

    ``native`` is the store's own one-request fusion when the settings choose it (OpenSearch's search pipeline);
    single-mode searches still go to the store's vector or text search.
    """

    has_modes = True

    def __init__(self, store: Store, queries: QueryEmbeddingCache, *, rrf_k: int = 60, fusion_depth: int = 50,
                 native: HybridSearch | None = None, fusion: str = "rrf", alpha: float = 0.5) -> None:
        if fusion not in FUSIONS:
            raise InputError(f"unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}")
        self.store = store
        self.queries = queries
        self.fusion = fusion
        self.alpha = alpha
        self.rrf_k = rrf_k
        self.fusion_depth = fusion_depth
        self.native = native

    @property
    def name(self) -> str:
        """``store`` with how it fuses (``store:convex:0.5:50``), or ``store-native-hybrid`` when the store fuses."""
        if self.native is not None:
            return "store-native-hybrid"
        how = f"{self.alpha:g}" if self.fusion in ("convex", "adaptive") else f"{self.rrf_k}"
        return f"store:{self.fusion}:{how}:{self.fusion_depth}"

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
        if self.fusion in ("convex", "adaptive"):
            adaptive = self.fusion == "adaptive"
            return fuse_convex(rankings, k, self.alpha, depth, adaptive=adaptive, keep_vector_first=adaptive)
        return fuse(rankings, k, self.rrf_k, keep_vector_first=self.fusion == "rrf-firsts")
