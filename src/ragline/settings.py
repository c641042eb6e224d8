"""Settings: one typed object, built once at the edge and passed down.

Precedence, highest first: explicit arguments > environment (``RAGLINE_*``) > config file
(``ragline.toml`` in the working directory, or the file named by ``RAGLINE_CONFIG``) > defaults.
Secrets are held as the *name* of the environment variable that holds them, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ChatProvider = Literal["local", "extractive", "openai", "bedrock", "knowledge-base"]
AuthMode = Literal["none", "api_key", "jwt"]
RetrievalMode = Literal["hybrid", "vector", "bm25"]
RegistryKind = Literal["sqlite", "dynamodb"]
RetrieverKind = Literal["store", "kendra", "knowledge-base"]
StoreKind = Literal["lancedb", "opensearch"]
OpenSearchAuth = Literal["aoss", "es", "basic", "none"]
OpenSearchEngine = Literal["faiss", "nmslib", "lucene"]
HybridFusion = Literal["ragline", "pipeline"]
BedrockApi = Literal["converse", "invoke"]


class Settings(BaseSettings):
    """Every knob of ragline, with its default."""

    model_config = SettingsConfigDict(env_prefix="RAGLINE_", extra="forbid", validate_default=True)

    home: Path = Field(Path(".ragline"), description="folder holding the index and the registry")
    tenant: str = Field("default", description="owner of what this process ingests and reads")
    language: str = Field("en", description="language tag stored with ingested chunks")

    embedder: str = Field("minilm", description="embedding model: minilm (local ONNX) or titan (Bedrock)")
    titan_dimension: int = Field(1024, description="vector size of Titan Text Embeddings v2: 256, 512 or 1024")
    embed_batch_size: int = Field(8, ge=1, le=1024)
    query_cache_size: int = Field(1024, ge=0)

    chunk_tokens: int = Field(200, ge=16, le=512, description="chunk size in embedding-model tokens")
    chunk_overlap: int = Field(32, ge=0, le=256, description="overlap between chunks, in tokens")
    progress_seconds: float = Field(
        10.0, ge=0, description="ingest without a terminal: one progress line this often (0: every document)"
    )

    retrieval: RetrievalMode = "hybrid"
    k: int = Field(5, ge=1, le=100, description="sources retrieved for an answer")
    fusion: Literal["rrf-firsts", "adaptive", "rrf", "convex"] = Field(
        "rrf-firsts", description="hybrid fusion: rrf-firsts (reciprocal rank fusion that keeps the vector search's "
        "first hit among the k), adaptive (convex fusion whose BM25 weight shrinks when BM25's ranking is flat, "
        "keeping the vector search's first hit), rrf, or convex (cosine and BM25 over its best score)"
    )
    fusion_alpha: float = Field(
        0.7, ge=0, le=1, description="convex and adaptive fusion: the weight of the vector score (adaptive: at least)")
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant")
    reranker: Literal["none", "http", "bedrock", "onnx"] = Field(
        "none", description="second stage: none, http (any /rerank endpoint), bedrock (Bedrock Rerank) or onnx (a "
        "cross-encoder ONNX file, RAGLINE_RERANK_MODEL, with its tokenizer.json)")
    rerank_url: str | None = Field(None, description="base URL of the /rerank endpoint (TEI, Infinity, Cohere, ...)")
    rerank_model: str = Field("", description="model name sent to the rerank endpoint (Cohere-style APIs); for "
                              "bedrock, the model id (amazon.rerank-v1:0, cohere.rerank-v3-5:0) or ARN; for onnx, "
                              "the model file")
    rerank_tokenizer: str | None = Field(None, description="onnx: the tokenizer.json (default: beside the model)")
    rerank_api: Literal["cohere", "tei"] = Field("cohere", description="request shape: cohere (also Jina, "
                                                 "Infinity, llama-server) or tei (Text Embeddings Inference)")
    rerank_api_key_env: str = Field("RERANK_API_KEY", description="name of the env var holding the rerank key")
    rerank_depth: int = Field(20, ge=1, le=200, description="passages retrieved for the reranker to choose k from")
    verify: Literal["annotate", "drop", "refuse", "off"] = Field(
        "annotate", description="every sentence checked against its cited sources: annotate (show each verdict), "
        "drop (show only supported sentences), refuse (replace an answer whose supported share is under "
        "verify_threshold with \"the sources do not support an answer\"), or off"
    )
    verifier: Literal["local", "guardrail"] = Field(
        "local", description="who checks: local (offline, the embedding model) or guardrail (Amazon Bedrock "
        "Guardrails' contextual grounding check, ApplyGuardrail)"
    )
    verify_threshold: float = Field(0.5, ge=0, le=1, description="refuse: the least share of supported claims")
    abstain: bool = Field(True, description="say \"I don't know\" when the passages found cannot answer the question")
    guardrail_id: str | None = Field(None, description="Bedrock guardrail id or ARN (verifier=guardrail); its "
                                     "contextual grounding thresholds decide")
    guardrail_version: str = Field("DRAFT", description="Bedrock guardrail version")
    fusion_depth: int = Field(
        50, ge=1, le=1000, description="hybrid: chunks taken from each of the vector and BM25 rankings (at least k)"
    )
    ann_min_rows: int = Field(
        100_000, ge=0, description="LanceDB: build an ANN vector index (IVF-HNSW-SQ) at this many chunks; 0 never"
    )
    exact_search: bool = Field(False, description="LanceDB: compare every vector even when an ANN index exists")

    chat_model: ChatProvider = Field(
        "extractive", description="extractive (no language model), local (llama.cpp, extra 'llama'), openai, bedrock, "
        "or knowledge-base (RetrieveAndGenerate)"
    )
    gguf_path: Path | None = Field(None, description="GGUF file for the local model; default SmolLM2-135M")
    n_ctx: int = Field(2048, ge=256, description="context window of the local model, in tokens")
    n_threads: int | None = Field(None, ge=1)
    max_tokens: int = Field(256, ge=1, description="answer length limit, in tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int = 0

    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    openai_api_key_env: str = Field("OPENAI_API_KEY", description="name of the env var holding the key")
    bedrock_model_id: str = Field(
        "anthropic.claude-3-haiku-20240307-v1:0", description="Bedrock model id or inference profile id"
    )
    bedrock_api: BedrockApi = Field(
        "converse", description="converse (ConverseStream, any model) or invoke (Anthropic Messages body)"
    )
    bedrock_regions: list[str] = Field(
        default_factory=list, description="regions tried in order when the first keeps failing (failover)"
    )
    request_timeout: float = Field(30.0, gt=0, description="client read timeout for remote models, seconds")
    fallback_models: list[str] = Field(
        default_factory=list,
        description="models tried in order when the main one keeps failing: 'local' or 'openai:MODEL[@BASE_URL]'",
    )
    retry_attempts: int = Field(3, ge=1, le=10, description="attempts per model for throttling and transient faults")
    retry_base_delay: float = Field(0.5, ge=0, description="first backoff cap, seconds (doubles each retry)")
    retry_max_delay: float = Field(8.0, ge=0, description="largest backoff cap, seconds")
    deadline: float | None = Field(120.0, gt=0, description="seconds for a whole answer; then it is partial")

    cache: bool = Field(True, description="cache answers (keyed by question, filters, model, index version)")
    cache_ttl: float = Field(86400.0, gt=0, description="seconds a cached answer lives")
    cache_size: int = Field(256, ge=0, description="answers kept in memory in front of the registry")
    cache_conversations: bool = Field(False, description="also cache turns that carry conversation history")
    conversation_turns: int = Field(4, ge=0, le=50, description="turns (question and answer) a conversation keeps")

    store: StoreKind = Field("lancedb", description="where ragline's own chunks live: lancedb or opensearch")
    opensearch_url: str | None = Field(None, description="OpenSearch endpoint, e.g. https://ID.REGION.aoss.amazonaws.com")
    opensearch_index: str = Field("ragline-chunks", description="OpenSearch index of the chunks")
    opensearch_auth: OpenSearchAuth | None = Field(
        None, description="aoss or es (SigV4), basic, none; unset: aoss/es from an AWS host name, else none"
    )
    opensearch_engine: OpenSearchEngine = Field("faiss", description="k-NN engine of a new index (HNSW)")
    opensearch_hybrid: HybridFusion = Field(
        "ragline", description="hybrid fusion: ragline (RRF) or pipeline (OpenSearch hybrid query, min-max)"
    )
    opensearch_user: str | None = Field(None, description="user for basic auth")
    opensearch_password_env: str = Field("OPENSEARCH_PASSWORD", description="env var holding the basic-auth password")

    retriever: RetrieverKind = Field(
        "store", description="store (ragline's own), kendra (Amazon Kendra), knowledge-base (Bedrock Retrieve)"
    )
    knowledge_base_id: str | None = Field(None, description="Bedrock knowledge base id (retriever or chat model)")
    knowledge_base_search: Literal["default", "hybrid", "semantic"] = Field(
        "default", description="the knowledge base's search type: default (its own choice), hybrid or semantic"
    )
    knowledge_base_stream: bool = Field(
        True, description="answerer: RetrieveAndGenerateStream (tokens as they come) or RetrieveAndGenerate"
    )
    knowledge_base_tenant_attribute: str | None = Field(
        None, description="knowledge base metadata key holding the tenant; unset: the base serves one tenant"
    )
    kendra_index_id: str | None = None
    kendra_language: str | None = Field(
        None, description="_language_code filter for Kendra; unset: the detected language of the question"
    )
    kendra_tenant_attribute: str | None = Field(
        None, description="Kendra document attribute holding the tenant; unset: the index serves one tenant"
    )

    index_uri: str | None = Field(
        None, description="LanceDB location: a folder or s3://bucket/prefix (default HOME/index)"
    )
    registry: RegistryKind = Field("sqlite", description="sqlite (in HOME) or dynamodb")
    dynamodb_table: str = Field("ragline", description="DynamoDB table of the registry, cache and connections")
    aws_region: str | None = Field(None, description="AWS region (default: the standard AWS configuration chain)")
    aws_endpoint_url: str | None = Field(
        None, description="one endpoint for every AWS API (moto, LocalStack); unset on AWS"
    )
    aws_endpoints: dict[str, str] = Field(
        default_factory=dict, description='endpoints per service, e.g. {"bedrock-runtime": "http://127.0.0.1:9000"}'
    )

    uploads_bucket: str | None = Field(
        None, description="on AWS: HTTP uploads go to s3://BUCKET/uploads/TENANT/, whose notifications ingest them"
    )
    websocket_endpoint: str | None = Field(
        None, description="API Gateway Management API endpoint (default: from the WebSocket event)"
    )
    public_websocket_url: str | None = Field(
        None, description="the page's WebSocket when it is not this server's /v1/ws (the API Gateway WebSocket's URL)"
    )
    cognito_domain: str | None = Field(
        None, description="the page signs in with this Cognito domain's hosted UI, e.g. https://NAME.auth.REGION."
        "amazoncognito.com (authorization code with PKCE)"
    )
    cognito_client_id: str | None = Field(None, description="the page's Cognito app client id")
    cognito_client_name: str | None = Field(
        None, description="or its name, looked up in the user pool of RAGLINE_JWT_ISSUER (what the template sets)"
    )
    websocket_answer: Literal["async", "inline"] = Field(
        "inline", description="API Gateway WebSocket: 'async' acknowledges sendMessage at once and answers from an "
        "asynchronous invocation of the same function (what the template sets: API Gateway cuts an integration at "
        "29 s); 'inline' answers within the route's invocation"
    )

    auth: AuthMode = Field("none", description="none (loopback only), api_key, or jwt")
    jwt_jwks: str | None = Field(None, description="JWKS URL or file path (RS256 signing keys)")
    jwt_issuer: str | None = Field(None, description="required 'iss' claim, e.g. the Cognito user pool URL")
    jwt_audience: str | None = Field(None, description="required 'aud' (or Cognito 'client_id') claim")
    jwt_tenant_claim: str = Field("sub", description="claim that names the tenant")
    jwt_tenant_prefix: str = Field("jwt:", description="put before the claim: a token's tenants live apart from "
                                   "API keys' and the CLI's ('' only where tokens are the one way in)")
    auth_failures_per_minute: int = Field(20, ge=1, description="failed sign-ins from one address before it waits")
    mcp: bool = Field(True, description="serve the Model Context Protocol at /mcp (behind the same auth)")
    metrics_token: str | None = Field(None, description="with auth on, the bearer token /metrics asks for "
                                      "(unset: /metrics is closed)")
    header_timeout: float = Field(10.0, gt=0, description="seconds a client may take to send a request's headers")
    ws_recheck_seconds: float = Field(2.0, gt=0, description="how often an open WebSocket's credential is checked")

    max_question_chars: int = Field(4000, ge=1)
    max_file_bytes: int = Field(100 * 1024 * 1024, ge=1)
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="one upload request, all files together")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="one JSON request body (images included)")
    max_expanded_bytes: int = Field(128 * 1024 * 1024, ge=1, description="a zip-based file (docx, pptx, xlsx), "
                                    "all its parts once expanded")
    max_compression_ratio: int = Field(100, ge=2, description="how many times a zip part or a gzip stream may "
                                       "expand (past its first MiB)")
    max_document_chars: int = Field(20_000_000, ge=1, description="characters of text one document may yield")
    ocr: Literal["auto", "tesseract", "textract", "off"] = Field(
        "auto", description="read scanned PDF pages and images: auto (Tesseract when installed), tesseract "
        "(required), textract (Amazon Textract's DetectDocumentText; what the Lambda ingest function uses), off")
    ocr_languages: str = Field("eng", description="Tesseract languages, e.g. eng+deu (their packages installed)")
    max_ocr_pages: int = Field(300, ge=1, description="pages of one document read by OCR")
    max_job_attempts: int = Field(3, ge=1, description="times an ingestion job is started before it is failed")

    @field_validator("titan_dimension")
    @classmethod
    def _titan_dimension(cls, value: int) -> int:
        if value not in (256, 512, 1024):
            raise ValueError("Titan Text Embeddings v2 makes vectors of 256, 512 or 1024 dimensions")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the TOML file."""
        toml_file = os.environ.get("RAGLINE_CONFIG", "ragline.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @property
    def index_dir(self) -> str:
        """Where the LanceDB database lives (a folder, or an ``s3://`` URI)."""
        return self.index_uri or str(self.home / "index")

    @property
    def registry_path(self) -> Path:
        """Path of the SQLite registry."""
        return self.home / "registry.sqlite3"

    def storage_options(self) -> dict[str, str]:
        """LanceDB's object-store options for an ``s3://`` index (credentials come from the standard chain)."""
        if not self.index_dir.startswith("s3://"):
            return {}
        options = {}
        if self.aws_region:
            options["aws_region"] = self.aws_region
        endpoint = self.endpoint_for("s3")
        if endpoint:
            options["aws_endpoint"] = endpoint
            options["allow_http"] = str(endpoint.startswith("http://")).lower()
        return options

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint URL for an AWS service (None: the standard AWS endpoint)."""
        return self.aws_endpoints.get(service, self.aws_endpoint_url)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (validated)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Settings(**data)
