"""The composition root: builds every part from the settings, lazily, once.

Each seam has one name → builder table. ``ragline.testing.register()`` adds the fakes to the same tables; no
production builder imports them.

``Ragline(settings, **parts)`` takes any part ready-made (tests inject a shared embedder or store this way).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from ragline.errors import ConfigError, StoreError, choices_message
from ragline.resilience import ResilientChatModel, RetryPolicy
from ragline.settings import Settings

if TYPE_CHECKING:
    from ragline.ingest.chunking import Chunker
    from ragline.ingest.originals import Originals
    from ragline.ingest.pipeline import Ingestor
    from ragline.providers.local.verifier import LocalVerifier
    from ragline.query.cache import AnswerCache
    from ragline.query.engine import Engine
    from ragline.query.retrieval import QueryEmbeddingCache
    from ragline.seams import (
        ChatModel,
        Connections,
        Conversations,
        Embedder,
        Registry,
        RelevanceGate,
        Reranker,
        Responder,
        Retriever,
        Store,
        Verifier,
    )

T = TypeVar("T")

# name → builder, one table per seam.
EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {}
CHAT_MODELS: dict[str, Callable[[str, Settings, int], ChatModel]] = {}  # (spec after "name:", settings, instances)
RESPONDERS: dict[str, Callable[[Ragline], Responder]] = {}  # the non-chat answerers; chat models are prompted
STORES: dict[str, Callable[[Ragline], Store]] = {}
RETRIEVERS: dict[str, Callable[[Ragline], Retriever]] = {}
REGISTRIES: dict[str, Callable[[Settings], Registry]] = {}
RERANKERS: dict[str, Callable[[Settings], Reranker | None]] = {}
VERIFIERS: dict[str, Callable[[Ragline], Verifier]] = {}


class Ragline:
    """The parts of one ragline instance; constructing it loads nothing."""

    def __init__(self, settings: Settings | None = None, **parts: Any) -> None:
        self.settings = settings or Settings()
        unknown = set(parts) - PARTS
        if unknown:
            raise TypeError(f"unknown parts {sorted(unknown)}; parts are {sorted(PARTS)}")
        vars(self).update(parts)  # a cached_property reads its value from here before building one
        self._tenants: dict[str, Ragline] = {}

    def for_tenant(self, tenant: str) -> Ragline:
        """The same parts (models, store, registry, cache) acting for another tenant."""
        if tenant == self.settings.tenant:
            return self
        if tenant not in self._tenants:  # built once per tenant, not once per request or job
            shared = {name: getattr(self, name) for name in _SHARED}
            self._tenants[tenant] = Ragline(self.settings.with_overrides(tenant=tenant), **shared)
        return self._tenants[tenant]

    @cached_property
    def embedder(self) -> Embedder:
        """The embedding model."""
        return _build(EMBEDDERS, "embedder", self.settings.embedder)(self.settings)

    @cached_property
    def registry(self) -> Registry:
        """The registry: SQLite in HOME, or DynamoDB."""
        return _build(REGISTRIES, "registry", self.settings.registry)(self.settings)

    @cached_property
    def conversations(self) -> Conversations:
        """Where conversations are kept (the registry: they survive a restart)."""
        return self.registry

    @cached_property
    def connections(self) -> Connections:
        """API Gateway WebSocket connections (DynamoDB only: Lambda keeps no state between invocations)."""
        if self.settings.registry != "dynamodb":
            raise ConfigError("the WebSocket handler keeps connections in DynamoDB: set RAGLINE_REGISTRY=dynamodb")
        from ragline.providers.aws.dynamo import DynamoDBRegistry

        registry = self.registry
        assert isinstance(registry, DynamoDBRegistry)  # the REGISTRIES entry "dynamodb" builds one
        return registry

    @cached_property
    def store(self) -> Store:
        """The chunk store (LanceDB or OpenSearch); refuses an index built by another embedder."""
        built_by = self.registry.get_meta("embedder")
        if built_by is not None and built_by != self.embedder.name:
            raise StoreError(
                f"the index in {self.settings.index_dir} was built with the embedder {built_by!r}, but the settings "
                f"select {self.embedder.name!r}; vectors of different models are not comparable: use another "
                "RAGLINE_HOME or re-ingest into an empty one"
            )
        return _build(STORES, "store", self.settings.store)(self)

    @cached_property
    def chunker(self) -> Chunker:
        """The chunker, counting in the embedder's tokens."""
        from ragline.ingest.chunking import Chunker

        s = self.settings
        return Chunker(self.embedder.tokenizer, self.embedder.count_tokens, s.chunk_tokens, s.chunk_overlap)

    @cached_property
    def ingestor(self) -> Ingestor:
        """The ingest path for this tenant; refused when answers do not come from ragline's own store."""
        from ragline.ingest.pipeline import Ingestor

        s = self.settings
        if s.retriever != "store" or s.chat_model == "knowledge-base":
            where, source = ("Amazon Kendra", "Kendra's data source sync") if s.retriever == "kendra" else (
                "a Bedrock knowledge base", "the knowledge base's data source sync (StartIngestionJob)")
            raise ConfigError(
                f"answers come from {where}, whose documents are ingested by {source}; ragline would ingest into "
                "its own store, which this configuration does not read: use RAGLINE_RETRIEVER=store (and a chat "
                "model other than knowledge-base) to ingest with ragline"
            )
        store = self.store
        if self.registry.get_meta("embedder") is None:
            self.registry.set_meta("embedder", self.embedder.name)
        return Ingestor(store=store, registry=self.registry, embedder=self.embedder, chunker=self.chunker,
                        tenant=s.tenant, language=s.language, batch_size=s.embed_batch_size,
                        originals=self.originals)

    @cached_property
    def originals(self) -> Originals | None:
        """Where PDFs' originals are: the uploads bucket on AWS, else HOME/originals beside a local index."""
        from ragline.ingest.originals import BucketOriginals, LocalOriginals

        s = self.settings
        if s.uploads_bucket:
            from ragline.providers.aws.clients import client

            return BucketOriginals(s.uploads_bucket, client("s3", s.aws_region, s.endpoint_for("s3")))
        if (s.index_uri or "").startswith("s3://"):
            return None  # the ingestion function: the upload in the bucket is the original
        return LocalOriginals(s.home / "originals")

    @cached_property
    def queries(self) -> QueryEmbeddingCache:
        """Query vectors, cached (shared by every tenant)."""
        from ragline.query.retrieval import QueryEmbeddingCache

        return QueryEmbeddingCache(self.embedder, self.settings.query_cache_size)

    @cached_property
    def retriever(self) -> Retriever:
        """What finds the passages: the store's hybrid search, Kendra, or a knowledge base's Retrieve."""
        return _build(RETRIEVERS, "retriever", self.settings.retriever)(self)

    @cached_property
    def reranker(self) -> Reranker | None:
        """The optional second stage (None: the retriever's order stands)."""
        return _build(RERANKERS, "reranker", self.settings.reranker)(self.settings)

    @cached_property
    def verifier(self) -> Verifier | None:
        """What checks each sentence of an answer against its cited sources (None: RAGLINE_VERIFY=off)."""
        if self.settings.verify == "off":
            return None
        return _build(VERIFIERS, "verifier", self.settings.verifier)(self)

    @cached_property
    def local_verifier(self) -> LocalVerifier:
        """The offline verifier over the embedder; also the relevance gate."""
        from ragline.providers.local.verifier import LocalVerifier

        return LocalVerifier(self.embedder, vectors=self.passage_vectors)

    @cached_property
    def passage_vectors(self) -> QueryEmbeddingCache:
        """Vectors of passage sentences, cached: the gate, the verifier and the extractive answerer share them."""
        from ragline.query.retrieval import QueryEmbeddingCache

        return QueryEmbeddingCache(self.embedder, 4096)

    @cached_property
    def gate(self) -> RelevanceGate | None:
        """What decides that the passages found cannot answer (None: RAGLINE_ABSTAIN=false)."""
        gate: RelevanceGate = self.local_verifier
        return gate if self.settings.abstain else None

    @cached_property
    def responder(self) -> Responder:
        """What answers: the configured chat model behind the prompt, or a non-chat answerer."""
        return self.responder_for(self.settings.chat_model)

    def responder_for(self, name: str) -> Responder:
        """A responder by name: ``extractive``, ``knowledge-base``, or a chat model (with its failover chain)."""
        if name in RESPONDERS:
            return RESPONDERS[name](self)
        from ragline.query.responders import PromptedResponder

        return PromptedResponder(self.chat_model(name), self.embedder.count_tokens)

    def chat_model(self, name: str) -> ResilientChatModel:
        """The chat model ``name`` behind the retry policy, followed by the failover chain of the settings."""
        s = self.settings
        chain = [make_chat_model(name, s)]
        fallbacks = list(s.fallback_models)
        if name == "bedrock":  # the same model in the other regions first, then the fallbacks
            fallbacks[:0] = [f"bedrock:{s.bedrock_model_id}@{r}" for r in s.bedrock_regions[1:]]
        chain += [make_chat_model(spec, s) for spec in fallbacks]
        return ResilientChatModel(chain, RetryPolicy.from_settings(s))

    @cached_property
    def cache(self) -> AnswerCache | None:
        """The answer cache (None when disabled)."""
        if not self.settings.cache:
            return None
        from ragline.query.cache import AnswerCache

        return AnswerCache(self.registry, ttl=self.settings.cache_ttl, size=self.settings.cache_size)

    @cached_property
    def engine(self) -> Engine:
        """The query path for this tenant, answering with the configured model."""
        return self.engine_for(self.responder)

    def engine_for(self, responder: Responder) -> Engine:
        """The query path for this tenant with another responder (the same retriever, cache and limits)."""
        from ragline.query.engine import Engine

        s = self.settings
        return Engine(retriever=self.retriever, responder=responder, tenant=s.tenant, cache=self.cache,
                      max_question_chars=s.max_question_chars, cache_conversations=s.cache_conversations,
                      reranker=self.reranker, rerank_depth=s.rerank_depth, verifier=self.verifier, gate=self.gate,
                      verify=s.verify, verify_threshold=s.verify_threshold)


PARTS = {"embedder", "registry", "conversations", "connections", "store", "chunker", "queries", "retriever",
         "reranker", "responder", "cache", "verifier", "local_verifier", "gate", "passage_vectors"}
_SHARED = ("embedder", "registry", "store", "chunker", "queries", "retriever", "reranker", "responder", "cache",
           "verifier", "local_verifier", "gate", "passage_vectors")


def _build(table: dict[str, T], seam: str, name: str) -> T:
    if name not in table:
        raise ConfigError(choices_message(seam, name, list(table)))
    return table[name]


def make_chat_model(spec: str, settings: Settings, instances: int = 1) -> ChatModel:
    """One chat model from ``NAME[:REST]``: local, openai[:MODEL[@BASE_URL]], bedrock[:MODEL_ID[@REGION]]."""
    name, _, rest = spec.partition(":")
    if name not in CHAT_MODELS:
        raise ConfigError(choices_message("chat model", spec, [*CHAT_MODELS, *RESPONDERS]) + (
            f"; {name!r} is not a chat model and cannot be a fallback or a workflow step" if name in RESPONDERS
            else ""))
    return CHAT_MODELS[name](rest, settings, instances)


# The builders. Each imports its provider when called, so only what the settings name is ever loaded.
def _minilm(s: Settings) -> Embedder:
    from ragline.providers.local.minilm import MiniLMEmbedder

    return MiniLMEmbedder(threads=s.n_threads)


def _titan(s: Settings) -> Embedder:
    from ragline.providers.aws.bedrock import TitanEmbedder

    return TitanEmbedder(dimension=s.titan_dimension, region=s.aws_region, endpoint_url=s.endpoint_for(
        "bedrock-runtime"), timeout=s.request_timeout, policy=RetryPolicy.from_settings(s))


def _local(rest: str, s: Settings, instances: int) -> ChatModel:
    from ragline.providers.local.llama import LlamaChatModel

    return LlamaChatModel(s.gguf_path, n_ctx=s.n_ctx, threads=s.n_threads, temperature=s.temperature, seed=s.seed,
                          instances=instances)


def _openai(rest: str, s: Settings, instances: int) -> ChatModel:
    from ragline.providers.openai import OpenAIChatModel

    model, _, base_url = rest.partition("@")
    return OpenAIChatModel(base_url=base_url or s.openai_base_url, model=model or s.openai_model,
                           api_key_env=s.openai_api_key_env, timeout=s.request_timeout, temperature=s.temperature)


def _bedrock(rest: str, s: Settings, instances: int) -> ChatModel:
    from ragline.providers.aws.bedrock import BedrockChatModel

    model_id, _, region = rest.partition("@")
    return BedrockChatModel(
        model_id or s.bedrock_model_id, region=region or next(iter(s.bedrock_regions), None) or s.aws_region,
        api=s.bedrock_api, endpoint_url=s.endpoint_for("bedrock-runtime"), timeout=s.request_timeout,
        temperature=s.temperature)


def knowledge_base_options(s: Settings) -> dict[str, Any]:
    """Settings shared by the knowledge-base retriever and answerer."""
    return {"search": s.knowledge_base_search, "tenant_attribute": s.knowledge_base_tenant_attribute,
            "region": s.aws_region, "endpoint_url": s.endpoint_for("bedrock-agent-runtime"),
            "timeout": s.request_timeout, "language": s.language, "policy": RetryPolicy.from_settings(s)}


def _extractive(app: Ragline) -> Responder:
    from ragline.providers.local.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer(app.embedder, vectors=app.passage_vectors)


def _knowledge_base_answerer(app: Ragline) -> Responder:
    from ragline.providers.aws.knowledge_base import KnowledgeBaseAnswerer

    s = app.settings
    return KnowledgeBaseAnswerer(s.knowledge_base_id or "", s.bedrock_model_id, stream=s.knowledge_base_stream,
                                 **knowledge_base_options(s))


def _lancedb(app: Ragline) -> Store:
    from ragline.providers.local.lancedb import LanceStore

    s = app.settings
    return LanceStore(s.index_dir, app.embedder.dimension, s.storage_options(), ann_min_rows=s.ann_min_rows,
                      exact=s.exact_search)


def _opensearch(app: Ragline) -> Store:
    from ragline.providers.opensearch import OpenSearchStore

    s = app.settings
    return OpenSearchStore(
        s.opensearch_url or "", s.opensearch_index, app.embedder.dimension, auth=s.opensearch_auth,
        region=s.aws_region, engine=s.opensearch_engine, hybrid=s.opensearch_hybrid, username=s.opensearch_user,
        password=os.environ.get(s.opensearch_password_env), timeout=s.request_timeout,
        policy=RetryPolicy.from_settings(s))


def _store_retriever(app: Ragline) -> Retriever:
    from ragline.query.retrieval import StoreRetriever

    s = app.settings
    native = None
    if s.store == "opensearch" and s.opensearch_hybrid == "pipeline":  # OpenSearch fuses in one request
        from ragline.providers.opensearch import OpenSearchStore

        store = app.store
        assert isinstance(store, OpenSearchStore)  # the STORES entry "opensearch" builds one
        native = store
    return StoreRetriever(app.store, app.queries, rrf_k=s.rrf_k, fusion_depth=s.fusion_depth, native=native,
                          fusion=s.fusion, alpha=s.fusion_alpha)


def _kendra(app: Ragline) -> Retriever:
    from ragline.providers.aws.kendra import KendraRetriever

    s = app.settings
    return KendraRetriever(s.kendra_index_id or "", language=s.kendra_language, default_language=s.language,
                           tenant_attribute=s.kendra_tenant_attribute, region=s.aws_region,
                           endpoint_url=s.endpoint_for("kendra"), timeout=s.request_timeout,
                           policy=RetryPolicy.from_settings(s))


def _knowledge_base_retriever(app: Ragline) -> Retriever:
    from ragline.providers.aws.knowledge_base import KnowledgeBaseRetriever

    return KnowledgeBaseRetriever(app.settings.knowledge_base_id or "", **knowledge_base_options(app.settings))


def _sqlite(s: Settings) -> Registry:
    from ragline.providers.local.sqlite import SQLiteRegistry

    return SQLiteRegistry(s.registry_path, turns=s.conversation_turns)


def _dynamodb(s: Settings) -> Registry:
    from ragline.providers.aws.dynamo import DynamoDBRegistry

    return DynamoDBRegistry(s.dynamodb_table, region=s.aws_region, endpoint_url=s.endpoint_for("dynamodb"),
                            turns=s.conversation_turns)


EMBEDDERS.update(minilm=_minilm, titan=_titan)
CHAT_MODELS.update(local=_local, openai=_openai, bedrock=_bedrock)
RESPONDERS.update({"extractive": _extractive, "knowledge-base": _knowledge_base_answerer})
STORES.update(lancedb=_lancedb, opensearch=_opensearch)
RETRIEVERS.update({"store": _store_retriever, "kendra": _kendra, "knowledge-base": _knowledge_base_retriever})
REGISTRIES.update(sqlite=_sqlite, dynamodb=_dynamodb)


def _no_reranker(s: Settings) -> Reranker | None:
    return None


def _http_reranker(s: Settings) -> Reranker:
    from ragline.providers.rerank import HTTPReranker

    return HTTPReranker(s.rerank_url or "", model=s.rerank_model, api=s.rerank_api,
                        api_key_env=s.rerank_api_key_env, timeout=s.request_timeout,
                        policy=RetryPolicy.from_settings(s))


def _bedrock_reranker(s: Settings) -> Reranker:
    from ragline.providers.aws.rerank import BedrockReranker

    return BedrockReranker(s.rerank_model, region=s.aws_region, endpoint_url=s.endpoint_for("bedrock-agent-runtime"),
                           timeout=s.request_timeout, policy=RetryPolicy.from_settings(s))


def _onnx_reranker(s: Settings) -> Reranker:
    from ragline.providers.local.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(s.rerank_model, s.rerank_tokenizer, threads=s.n_threads or 0)


RERANKERS.update(none=_no_reranker, http=_http_reranker, bedrock=_bedrock_reranker, onnx=_onnx_reranker)


def _local_verifier(app: Ragline) -> Verifier:
    verifier: Verifier = app.local_verifier
    return verifier


def _guardrail(app: Ragline) -> Verifier:
    from ragline.providers.aws.guardrail import GuardrailVerifier

    s = app.settings
    return GuardrailVerifier(s.guardrail_id or "", s.guardrail_version, region=s.aws_region,
                             endpoint_url=s.endpoint_for("bedrock-runtime"), timeout=s.request_timeout,
                             policy=RetryPolicy.from_settings(s))


VERIFIERS.update(local=_local_verifier, guardrail=_guardrail)
