"""Chat models (siblings behind the ChatModel protocol) and the extractive answerer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragline.errors import ConfigError, choices_message
from ragline.settings import Settings
from ragline.types import AnswerModel, ChatModel, Embedder

if TYPE_CHECKING:
    from ragline.workflows.run import RetrySpec

PROVIDERS = ("local", "extractive", "openai", "bedrock", "knowledge-base")


def make_generator(settings: Settings, embedder: Embedder) -> AnswerModel:
    """The generator the settings name; chat models are wrapped in the retry and failover policy."""
    from ragline.resilience import ResilientChatModel, RetryPolicy

    primary = make_chat_model(settings.chat_model, settings, embedder)
    if not isinstance(primary, ChatModel):
        return primary
    chain = [primary]
    fallbacks = list(settings.fallback_models)
    if settings.chat_model == "bedrock":  # the same model in the other regions first, then the fallbacks
        fallbacks[:0] = [f"bedrock:{settings.bedrock_model_id}@{r}" for r in settings.bedrock_regions[1:]]
    for spec in fallbacks:
        model = make_chat_model(spec, settings, embedder)
        if not isinstance(model, ChatModel):
            raise ConfigError(
                f"fallback {spec!r} is not a chat model; use 'local', 'openai:MODEL[@BASE_URL]' or "
                "'bedrock:MODEL_ID[@REGION]'"
            )
        chain.append(model)
    return ResilientChatModel(chain, RetryPolicy.from_settings(settings))


class WorkflowModels:
    """Models for workflow steps by name, each call wrapped in the step's retry policy.

    One model object per name serves every step; a local model keeps ``concurrency`` llama.cpp instances so
    parallel branches really run at the same time.
    """

    def __init__(self, settings: Settings, embedder: Embedder, concurrency: int) -> None:
        self.settings, self.embedder, self.concurrency = settings, embedder, concurrency
        self.models: dict[str, ChatModel] = {}

    def __call__(self, spec: str, retry: RetrySpec) -> ChatModel:
        """The model named ``spec`` behind the retry policy ``retry``."""
        from ragline.resilience import ResilientChatModel, RetryPolicy

        if spec not in self.models:
            model = make_chat_model(spec, self.settings, self.embedder, instances=self.concurrency)
            if not isinstance(model, ChatModel):
                raise ConfigError(f"workflow steps need a chat model, not {spec!r}")
            self.models[spec] = model
        policy = RetryPolicy(retry.max_attempts, retry.base_delay, retry.max_delay)
        return ResilientChatModel([self.models[spec]], policy)

    def close(self) -> None:
        """Free models that hold memory (llama.cpp instances)."""
        for model in self.models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()


def workflow_models(settings: Settings, embedder: Embedder, concurrency: int) -> WorkflowModels:
    """The model factory a workflow runner uses."""
    return WorkflowModels(settings, embedder, concurrency)


def knowledge_base_options(settings: Settings) -> dict[str, Any]:
    """Settings shared by the knowledge-base retriever and answerer."""
    from ragline.resilience import RetryPolicy

    return {
        "search": settings.knowledge_base_search, "tenant_attribute": settings.knowledge_base_tenant_attribute,
        "region": settings.aws_region, "endpoint_url": settings.endpoint_for("bedrock-agent-runtime"),
        "timeout": settings.request_timeout, "language": settings.language,
        "policy": RetryPolicy.from_settings(settings),
    }


def make_chat_model(spec: str, settings: Settings, embedder: Embedder, instances: int = 1) -> AnswerModel:
    """One generator from its name.

    local, extractive, openai[:MODEL[@BASE_URL]], bedrock[:MODEL_ID[@REGION]], or knowledge-base[:MODEL_ID]
    (Bedrock RetrieveAndGenerate over RAGLINE_KNOWLEDGE_BASE_ID).
    """
    name, _, rest = spec.partition(":")
    if name == "local":
        from ragline.providers.local.llama import LlamaChatModel

        return LlamaChatModel(
            settings.gguf_path, n_ctx=settings.n_ctx, threads=settings.n_threads,
            temperature=settings.temperature, seed=settings.seed, instances=instances,
        )
    if name == "extractive":
        from ragline.providers.local.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(embedder)
    if name == "openai":
        from ragline.providers.openai import OpenAIChatModel

        model, _, base_url = rest.partition("@")
        return OpenAIChatModel(
            base_url=base_url or settings.openai_base_url, model=model or settings.openai_model,
            api_key_env=settings.openai_api_key_env, timeout=settings.request_timeout,
            temperature=settings.temperature,
        )
    if name == "bedrock":
        from ragline.providers.aws.bedrock import BedrockChatModel

        model_id, _, region = rest.partition("@")
        return BedrockChatModel(
            model_id or settings.bedrock_model_id, region=region or next(iter(settings.bedrock_regions), None)
            or settings.aws_region, api=settings.bedrock_api, endpoint_url=settings.endpoint_for("bedrock-runtime"),
            timeout=settings.request_timeout, temperature=settings.temperature,
        )
    if name == "knowledge-base":
        from ragline.providers.aws.knowledge_base import KnowledgeBaseAnswerer

        return KnowledgeBaseAnswerer(
            settings.knowledge_base_id or "", rest or settings.bedrock_model_id, stream=settings.knowledge_base_stream,
            **knowledge_base_options(settings),
        )
    if name == "fake":
        from ragline.testing.fakes import EchoChatModel

        return EchoChatModel()
    raise ConfigError(choices_message("chat model provider", spec, PROVIDERS))
