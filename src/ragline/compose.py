"""The composition root: builds every part from the settings, lazily, once."""

from __future__ import annotations

from functools import cached_property

from ragline.errors import ConfigError, StoreError
from ragline.ingest.chunking import Chunker
from ragline.ingest.pipeline import Ingestor
from ragline.providers.local.lancedb import LanceStore
from ragline.providers.local.minilm import make_embedder
from ragline.providers.local.sqlite import Registry, SQLiteRegistry
from ragline.query.cache import AnswerCache
from ragline.query.engine import Engine
from ragline.settings import Settings
from ragline.types import AnswerModel, Embedder, Retriever, Store


class Ragline:
    """The parts of one ragline instance; constructing it loads nothing."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._tenants: dict[str, Ragline] = {}

    def for_tenant(self, tenant: str) -> Ragline:
        """The same parts (models, store, registry, cache) acting for another tenant."""
        if tenant == self.settings.tenant:
            return self
        if tenant not in self._tenants:  # built once per tenant, not once per request or job
            other = Ragline(self.settings.with_overrides(tenant=tenant))
            for shared in ("embedder", "registry", "store", "chunker", "generator", "cache", "retriever"):
                other.__dict__[shared] = getattr(self, shared)
            self._tenants[tenant] = other
        return self._tenants[tenant]

    @cached_property
    def embedder(self) -> Embedder:
        """The embedding model."""
        return make_embedder(self.settings.embedder, self.settings.n_threads, self.settings)

    @cached_property
    def registry(self) -> Registry:
        """The document registry: SQLite in HOME, or DynamoDB."""
        if self.settings.registry == "dynamodb":
            from ragline.providers.aws.dynamo import DynamoDBRegistry

            return DynamoDBRegistry(self.settings.dynamodb_table, region=self.settings.aws_region,
                                    endpoint_url=self.settings.endpoint_for("dynamodb"))
        return SQLiteRegistry(self.settings.registry_path)

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
        s = self.settings
        if s.store == "opensearch":
            import os

            from ragline.providers.opensearch import OpenSearchStore
            from ragline.resilience import RetryPolicy

            return OpenSearchStore(
                s.opensearch_url or "", s.opensearch_index, self.embedder.dimension, auth=s.opensearch_auth,
                region=s.aws_region, engine=s.opensearch_engine, hybrid=s.opensearch_hybrid,
                username=s.opensearch_user, password=os.environ.get(s.opensearch_password_env),
                timeout=s.request_timeout,
                policy=RetryPolicy.from_settings(s),
            )
        return LanceStore(s.index_dir, self.embedder.dimension, s.storage_options(), ann_min_rows=s.ann_min_rows,
                          exact=s.exact_search)

    @cached_property
    def chunker(self) -> Chunker:
        """The chunker, counting in the embedder's tokens."""
        tokenizer = getattr(self.embedder, "tokenizer", None)
        return Chunker(tokenizer, self.embedder.count_tokens, self.settings.chunk_tokens, self.settings.chunk_overlap)

    @cached_property
    def ingestor(self) -> Ingestor:
        """The ingest path for this tenant; refused when answers do not come from ragline's own store."""
        s = self.settings
        if s.retriever != "store" or s.chat_model == "knowledge-base":
            where, source = ("Amazon Kendra", "Kendra's data source sync") if s.retriever == "kendra" else (
                "a Bedrock knowledge base", "the knowledge base's data source sync (StartIngestionJob)")
            raise ConfigError(
                f"answers come from {where}, "
                f"whose documents are ingested by {source}; ragline would ingest into its own store, which this "
                "configuration does not read: use RAGLINE_RETRIEVER=store (and a chat model other than "
                "knowledge-base) to ingest with ragline"
            )
        store = self.store
        if self.registry.get_meta("embedder") is None:
            self.registry.set_meta("embedder", self.embedder.name)
        return Ingestor(
            store=store, registry=self.registry, embedder=self.embedder, chunker=self.chunker,
            tenant=self.settings.tenant, language=self.settings.language,
            batch_size=self.settings.embed_batch_size,
        )

    @cached_property
    def generator(self) -> AnswerModel:
        """The chat model or extractive answerer."""
        from ragline.providers.chat import make_generator

        return make_generator(self.settings, self.embedder)

    @cached_property
    def cache(self) -> AnswerCache | None:
        """The answer cache (None when disabled)."""
        if not self.settings.cache:
            return None
        return AnswerCache(self.registry, ttl=self.settings.cache_ttl, size=self.settings.cache_size)

    @cached_property
    def engine(self) -> Engine:
        """The query path for this tenant."""
        return Engine(
            store=self.store, embedder=self.embedder, generator=self.generator, tenant=self.settings.tenant,
            query_cache_size=self.settings.query_cache_size, max_question_chars=self.settings.max_question_chars,
            rrf_k=self.settings.rrf_k, fusion_depth=self.settings.fusion_depth,
            cache=self.cache, cache_conversations=self.settings.cache_conversations,
            retriever=self.retriever,
        )

    @cached_property
    def retriever(self) -> Retriever | None:
        """A retriever used instead of the store's own search (Amazon Kendra, a Bedrock knowledge base), or None."""
        s = self.settings
        if s.retriever == "knowledge-base":
            from ragline.providers.aws.knowledge_base import KnowledgeBaseRetriever
            from ragline.providers.chat import knowledge_base_options

            return KnowledgeBaseRetriever(s.knowledge_base_id or "", **knowledge_base_options(s))
        if s.retriever != "kendra":
            return None
        from ragline.providers.aws.kendra import KendraRetriever

        return KendraRetriever(
            s.kendra_index_id or "", language=s.kendra_language, default_language=s.language,
            tenant_attribute=s.kendra_tenant_attribute, region=s.aws_region, endpoint_url=s.endpoint_for("kendra"),
            timeout=s.request_timeout,
        )
