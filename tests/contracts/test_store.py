"""The Store contract (haystack's ``DocumentStoreBaseTests`` in spirit), run over every implementation: LanceDB
in a temp folder, and OpenSearch as a managed domain and as Serverless (the loopback stand-in, SigV4-signed),
plus a real OpenSearch when ``OPENSEARCH_URL`` names one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ragline.providers.local.lancedb import LanceStore
from ragline.providers.opensearch import OpenSearchStore
from ragline.seams import Store
from ragline.testing.fakes import FakeEmbedder
from ragline.testing.opensearch import FakeOpenSearch
from ragline.types import Chunk

KINDS = ["lancedb", "opensearch-es", "opensearch-aoss"] + (["opensearch-live"] if os.environ.get("OPENSEARCH_URL")
                                                             else [])
EMBED = FakeEmbedder(64)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    kind = request.param
    if kind == "lancedb":
        yield LanceStore(tmp_path / "index", EMBED.dimension)
        return
    if kind == "opensearch-live":
        yield OpenSearchStore(os.environ["OPENSEARCH_URL"], f"contract-{uuid.uuid4().hex[:8]}", EMBED.dimension)
        return
    request.getfixturevalue("aws_env")
    service = kind.split("-")[1]
    with FakeOpenSearch(service=service) as fake:
        yield OpenSearchStore(fake.url, "chunks", EMBED.dimension, auth=service, region="us-east-1")


def chunks(tenant: str, doc_id: str, texts: list[str], tags: tuple[str, ...] = ()) -> list[Chunk]:
    return [Chunk(f"{tenant}:{doc_id}:{n}", doc_id, n, text, title=doc_id, tenant=tenant, tags=tags)
            for n, text in enumerate(texts)]


def write(store: Store, items: list[Chunk], *, fresh: bool = True) -> None:
    by_doc: dict[tuple[str, str], list[Chunk]] = {}
    for c in items:
        by_doc.setdefault((c.tenant, c.doc_id), []).append(c)
    for (tenant, doc_id), group in by_doc.items():
        store.replace_documents(tenant, [doc_id], group, EMBED.embed_batch([c.context_text() for c in group]),
                                fresh=fresh)
    store.refresh_indexes()


@pytest.fixture
def filled(store: Store) -> Store:
    write(store, chunks("acme", "pets.md", ["Cats sleep most of the day.", "Dogs need daily walks."], ("team=ops",)))
    write(store, chunks("acme", "errors.md", ["Error QZX-7741 means the upstream gateway timed out."]))
    write(store, chunks("globex", "pets.md", ["Globex cats are secret."]))
    return store


def test_count_by_tenant_document_and_tag(filled: Store) -> None:
    assert filled.count({"tenant": "acme"}) == 3 and filled.count({"tenant": "globex"}) == 1
    assert filled.count({"tenant": "acme", "doc_id": "pets.md"}) == 2
    assert filled.count({"tenant": "acme", "team": "ops"}) == 2
    assert filled.dimension == EMBED.dimension
    assert isinstance(filled.describe(), str)


def test_vector_search_ranks_by_cosine_within_the_filters(filled: Store) -> None:
    hits = filled.search_vector(EMBED.embed_batch(["cats sleep"])[0], 2, {"tenant": "acme"})
    assert hits[0].chunk.text == "Cats sleep most of the day."
    assert all(h.chunk.tenant == "acme" for h in hits) and len(hits) == 2
    assert 0.0 <= hits[-1].score <= hits[0].score <= 1.0
    assert filled.search_vector(EMBED.embed_batch(["cats"])[0], 5, {"tenant": "nobody"}) == []


def test_text_search_finds_an_exact_identifier(filled: Store) -> None:
    hits = filled.search_text("QZX-7741", 3, {"tenant": "acme"})
    assert [h.chunk.doc_id for h in hits][:1] == ["errors.md"]
    assert filled.search_text("QZX-7741", 3, {"tenant": "globex"}) == []
    assert [h.chunk.doc_id for h in filled.search_text("cats", 5, {"tenant": "acme", "team": "ops"})] == ["pets.md"]


def test_replace_and_delete_act_on_one_document_of_one_tenant(filled: Store) -> None:
    write(filled, chunks("acme", "pets.md", ["Parrots talk."]), fresh=False)
    texts = sorted(h.chunk.text for h in filled.search_text("parrots cats dogs", 10, {"tenant": "acme"}))
    assert texts == ["Parrots talk."]
    filled.delete_document("acme", "pets.md")
    filled.refresh_indexes()
    assert filled.count({"tenant": "acme", "doc_id": "pets.md"}) == 0
    assert filled.count({"tenant": "globex", "doc_id": "pets.md"}) == 1  # another tenant's document of that name


def test_vectors_come_back_as_written(filled: Store) -> None:
    vector = EMBED.embed_batch([chunks("acme", "pets.md", ["", "Dogs need daily walks."])[1].context_text()])[0]
    best = filled.search_vector(vector, 1, {"tenant": "acme"})[0]
    assert best.chunk.text == "Dogs need daily walks." and best.score == pytest.approx(1.0, abs=1e-3)
    assert np.isclose(np.linalg.norm(vector), 1.0)
