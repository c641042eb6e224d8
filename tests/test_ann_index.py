"""The LanceDB ANN vector index: built at the configured size, kept up to date, and close to exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ragline.providers.local.lancedb import LanceStore
from ragline.types import Chunk


def fill(store: LanceStore, n: int, start: int = 0, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, store.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(id=f"c{start + i}", doc_id=f"d{(start + i) // 10}", ordinal=i % 10, text=f"chunk {start + i}",
                    title="t", heading="", page=None, tenant="default", language="en", tags=())
              for i in range(n)]
    doc_ids = sorted({c.doc_id for c in chunks})
    store.replace_documents("default", doc_ids, chunks, vectors, fresh=True)
    store.refresh_indexes()
    return vectors


def top_ids(store: LanceStore, vector: np.ndarray, k: int = 10) -> list[str]:
    return [h.chunk.id for h in store.search_vector(vector, k, {"tenant": "default"})]


def has_vector_index(store: LanceStore) -> bool:
    return any(ix.columns == ["vector"] for ix in store._open().list_indices())


def test_the_index_appears_at_the_threshold_and_answers_like_exact_search(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "index", 32, ann_min_rows=1500)
    vectors = fill(store, 1000)
    assert not has_vector_index(store)  # below the threshold: flat search only
    vectors = np.vstack([vectors, fill(store, 1000, start=1000, seed=8)])
    assert has_vector_index(store)
    exact = LanceStore(tmp_path / "index", 32, exact=True)
    recall = []
    for i in range(0, 2000, 100):
        assert top_ids(store, vectors[i], 1) == [f"c{i}"]  # a stored vector finds itself
        ann, truth = top_ids(store, vectors[i]), top_ids(exact, vectors[i])
        recall.append(len(set(ann) & set(truth)) / len(truth))
    assert np.mean(recall) >= 0.9


def test_rows_written_after_the_index_are_found(tmp_path: Path) -> None:
    store = LanceStore(tmp_path / "index", 32)
    fill(store, 600)
    assert store.build_vector_index() and has_vector_index(store)
    later = fill(store, 50, start=600, seed=9)  # optimize folds them in; until then a flat scan finds them
    assert top_ids(store, later[10], 1) == ["c610"]
    store.drop_vector_index()
    assert not has_vector_index(store) and top_ids(store, later[10], 1) == ["c610"]


def test_an_empty_store_builds_nothing(tmp_path: Path) -> None:
    assert LanceStore(tmp_path / "index", 32).build_vector_index() is False
