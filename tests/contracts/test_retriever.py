"""The Retriever contract, run over every implementation: the store's own hybrid search (LanceDB, RRF), the
OpenSearch search pipeline's native fusion (loopback), Kendra and a Bedrock knowledge base (boto3 against the
loopback). Every one returns at most ``k`` hits, best first, and never another tenant's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragline.providers.aws.kendra import KendraRetriever
from ragline.providers.aws.knowledge_base import KnowledgeBaseRetriever
from ragline.providers.local.lancedb import LanceStore
from ragline.providers.opensearch import OpenSearchStore
from ragline.query.retrieval import QueryEmbeddingCache, StoreRetriever
from ragline.seams import Retriever, Store
from ragline.testing.aws import FakeAWSModels
from ragline.testing.fakes import FakeEmbedder
from ragline.testing.opensearch import FakeOpenSearch
from ragline.types import Chunk

EMBED = FakeEmbedder(64)
PASSAGES = [
    {"id": "lex", "title": "What is Amazon Lex?", "language": "en", "tenant": "acme",
     "uri": "s3://docs/acme/lex.md", "text": "Amazon Lex builds conversational interfaces with voice and text."},
    {"id": "polly", "title": "What is Amazon Polly?", "language": "en", "tenant": "acme",
     "uri": "s3://docs/acme/polly.md", "text": "Amazon Polly turns text into lifelike speech."},
    {"id": "secret", "title": "Globex plan", "language": "en", "tenant": "globex",
     "uri": "s3://docs/globex/plan.md", "text": "Globex builds conversational interfaces in secret."},
]
KENDRA_INDEX = "0f3e1c2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"


def fill(store: Store) -> Store:
    for p in PASSAGES:
        chunk = Chunk(p["id"], p["uri"], 0, p["text"], title=p["title"], tenant=p["tenant"])
        store.replace_documents(p["tenant"], [p["uri"]], [chunk], EMBED.embed_batch([chunk.context_text()]),
                                fresh=True)
    store.refresh_indexes()
    return store


@pytest.fixture(params=["store-lancedb", "store-opensearch-native", "kendra", "knowledge-base"])
def retriever(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Retriever]:
    kind = request.param
    queries = QueryEmbeddingCache(EMBED)
    if kind == "store-lancedb":
        yield StoreRetriever(fill(LanceStore(tmp_path / "index", EMBED.dimension)), queries)
        return
    request.getfixturevalue("aws_env")
    if kind == "store-opensearch-native":
        with FakeOpenSearch(service="es") as fake:
            store = OpenSearchStore(fake.url, "chunks", EMBED.dimension, auth="es", region="us-east-1",
                                    hybrid="pipeline")
            yield StoreRetriever(fill(store), queries, native=store)
        return
    with FakeAWSModels(passages=PASSAGES) as aws:
        if kind == "kendra":
            yield KendraRetriever(KENDRA_INDEX, language="en", tenant_attribute="tenant", region="us-east-1",
                                  endpoint_url=aws.endpoint_url)
        else:
            yield KnowledgeBaseRetriever("KB12345678", tenant_attribute="tenant", region="us-east-1",
                                         endpoint_url=aws.endpoint_url)


def test_the_best_passages_of_the_tenant_only(retriever: Retriever) -> None:
    hits = retriever.retrieve("conversational interfaces voice text", k=2, mode="hybrid", filters={},
                              tenant="acme")
    assert 1 <= len(hits) <= 2
    assert hits[0].chunk.text.startswith("Amazon Lex builds conversational interfaces")
    assert all(h.chunk.tenant == "acme" and "globex" not in h.chunk.doc_id for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert isinstance(retriever.name, str) and retriever.name


def test_a_tenant_filter_in_the_request_cannot_widen_the_scope(retriever: Retriever) -> None:
    hits = retriever.retrieve("Globex secret plan", k=5, mode="hybrid", filters={"tenant": "globex"},
                              tenant="acme")
    assert all("globex" not in h.chunk.doc_id for h in hits)
