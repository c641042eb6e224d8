"""Chat models (siblings behind the ChatModel protocol) and the extractive answerer."""

from __future__ import annotations

from ..errors import ConfigError, choices_message
from ..settings import Settings
from ..types import Answerer, ChatModel, Embedder

PROVIDERS = ("local", "extractive", "openai")


def make_chat_model(settings: Settings, embedder: Embedder) -> ChatModel | Answerer:
    """Build the generator the settings name."""
    name = settings.chat_model
    if name == "local":
        from .llama import LlamaChatModel

        return LlamaChatModel(
            settings.gguf_path, n_ctx=settings.n_ctx, threads=settings.n_threads,
            temperature=settings.temperature, seed=settings.seed,
        )
    if name == "extractive":
        from .extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(embedder)
    if name == "openai":
        from .openai import OpenAIChatModel

        return OpenAIChatModel(
            base_url=settings.openai_base_url, model=settings.openai_model,
            api_key_env=settings.openai_api_key_env, timeout=settings.request_timeout,
            temperature=settings.temperature,
        )
    if name == "fake":
        from ..testing import EchoChatModel

        return EchoChatModel()
    raise ConfigError(choices_message("chat model provider", str(name), PROVIDERS))
