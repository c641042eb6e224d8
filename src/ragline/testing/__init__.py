"""Deterministic fakes, loopback servers speaking real wire formats, and stand-ins; never imported by production code.

``register()`` adds the fakes to the composition root's name → builder tables, as real providers are: the
embedder ``fake`` (hashed bag of words) and the chat model ``fake`` (echoes source [1]).
"""

from __future__ import annotations

from ragline import compose
from ragline.settings import Settings
from ragline.testing.fakes import EchoChatModel, FakeEmbedder


def register() -> None:
    """Make ``fake`` a valid embedder and chat-model name."""

    def embedder(settings: Settings) -> FakeEmbedder:
        return FakeEmbedder()

    def chat(rest: str, settings: Settings, instances: int) -> EchoChatModel:
        return EchoChatModel()

    compose.EMBEDDERS["fake"] = embedder
    compose.CHAT_MODELS["fake"] = chat
