"""Answering a turn, once for every interface.

The engine for the model asked for, the conversation's history in, the Query built, the events out, and the
turn remembered when its answer is done.

The model names a caller may ask for are ``ragline`` (the configured responder) and ``ragline-extractive``;
both retrieve through the same configured retriever.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Literal, get_args

from ragline.compose import Ragline
from ragline.errors import ConfigError, RaglineError, choices_message
from ragline.interfaces.requests import QueryRequest, query_for
from ragline.query.engine import Engine
from ragline.types import Done, ErrorEvent, Event, Query

Model = Literal["ragline", "ragline-extractive"]
MODELS: tuple[str, ...] = get_args(Model)


class Turns:
    """Engines by (model, tenant), and the turn loop every interface shares."""

    def __init__(self, rag: Ragline) -> None:
        self.rag = rag
        self._engines: dict[tuple[str, str], Engine] = {}
        self._lock = threading.Lock()

    def engine(self, model: str, tenant: str) -> Engine:
        """The engine answering as ``model`` for ``tenant``; an unknown model is a ConfigError listing valid ones."""
        if model not in MODELS:
            raise ConfigError(choices_message("model", model, MODELS))
        with self._lock:
            if (model, tenant) not in self._engines:
                view = self.rag.for_tenant(tenant)
                self._engines[model, tenant] = view.engine if model == "ragline" else view.engine_for(
                    view.responder_for("extractive"))
            return self._engines[model, tenant]

    def prepare(self, tenant: str, request: QueryRequest, *, model: str = "ragline", conversation: str = "",
                time_left: float | None = None) -> tuple[Engine, Query]:
        """The engine and the checked query for a turn; raises the RaglineError that refuses it."""
        engine = self.engine(model, tenant)
        history = self.rag.conversations.history(tenant, conversation) if conversation else ()
        query = query_for(self.rag.settings, request, history, time_left=time_left)
        engine.check(query)
        return engine, query

    def stream(self, engine: Engine, query: Query, tenant: str,
               conversation: str = "") -> Generator[Event, None, None]:
        """The engine's events; a finished answer is remembered in the conversation."""
        events = engine.stream(query)
        try:
            for event in events:
                if isinstance(event, Done) and conversation:
                    self.rag.conversations.remember(tenant, conversation, query.question, event.answer.text)
                yield event
        finally:
            events.close()  # a caller that left stops the model now

    def answer(self, tenant: str, request: QueryRequest, *, model: str = "ragline", conversation: str = "",
               time_left: float | None = None) -> Generator[Event, None, None]:
        """``prepare`` then ``stream``: a turn that is refused ends as its ErrorEvent, like any other failure."""
        try:
            engine, query = self.prepare(tenant, request, model=model, conversation=conversation,
                                         time_left=time_left)
        except RaglineError as err:
            yield ErrorEvent(type(err).__name__, str(err))
            return
        yield from self.stream(engine, query, tenant, conversation)
