"""The query path: question → retrieve (vector + BM25 fused; filters; tenant) → prompt → generate → cite-check.

Every interface consumes ``Engine.stream``'s events; ``Engine.ask`` is the same stream, collected.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .citations import check_citations
from .embedding import QueryEmbeddingCache
from .errors import InputError
from .prompts import build_messages
from .store import LanceStore, fuse
from .types import (
    Answer,
    Answerer,
    ChatModel,
    Done,
    Embedder,
    Event,
    Hit,
    Message,
    Source,
    Sources,
    Token,
    Usage,
    UsageEvent,
)

log = logging.getLogger("ragline")
MODES = ("hybrid", "vector", "bm25")


@dataclass(frozen=True, slots=True)
class Query:
    """One question and how to answer it."""

    question: str
    filters: Mapping[str, str] = field(default_factory=dict)
    k: int = 5
    mode: str = "hybrid"
    history: Sequence[Message] = ()
    max_tokens: int = 256


def log_stage(stage: str, seconds: float, **extra: object) -> None:
    """One structured log line per stage, with its duration."""
    log.info(json.dumps({"stage": stage, "ms": round(seconds * 1000, 1), **extra}, default=str))


class Engine:
    """Answers questions for one tenant over injected parts."""

    def __init__(
        self,
        *,
        store: LanceStore,
        embedder: Embedder,
        generator: ChatModel | Answerer,
        tenant: str,
        query_cache_size: int = 1024,
        max_question_chars: int = 4000,
        rrf_k: int = 60,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.generator = generator
        self.tenant = tenant
        self.queries = QueryEmbeddingCache(embedder, query_cache_size)
        self.max_question_chars = max_question_chars
        self.rrf_k = rrf_k

    def check(self, query: Query) -> None:
        """Refuse questions that cannot be served, saying why."""
        if not query.question.strip():
            raise InputError("the question is empty")
        if len(query.question) > self.max_question_chars:
            raise InputError(
                f"the question is {len(query.question):,} characters; the limit is "
                f"{self.max_question_chars:,} (RAGLINE_MAX_QUESTION_CHARS)"
            )
        if query.mode not in MODES:
            raise InputError(f"unknown retrieval mode {query.mode!r}; valid: {', '.join(MODES)}")

    def retrieve(self, question: str, *, k: int = 5, mode: str = "hybrid",
                 filters: Mapping[str, str] | None = None) -> list[Hit]:
        """The best ``k`` chunks for the question, always limited to this engine's tenant."""
        scoped = {**(filters or {}), "tenant": self.tenant}
        depth = max(k * 4, 50)
        rankings: dict[str, list[Hit]] = {}
        if mode in ("vector", "hybrid"):
            rankings["vector"] = self.store.search_vector(self.queries.embed(question), depth, scoped)
        if mode in ("bm25", "hybrid"):
            rankings["bm25"] = self.store.search_text(question, depth, scoped)
        if mode != "hybrid":
            return next(iter(rankings.values()))[:k]
        return fuse(rankings, k, self.rrf_k)

    @staticmethod
    def sources(hits: Sequence[Hit]) -> list[Source]:
        """Number the hits as the sources the answer may cite."""
        return [
            Source(n, h.chunk.doc_id, h.chunk.title, h.chunk.heading, h.chunk.page, h.score, h.chunk.text)
            for n, h in enumerate(hits, start=1)
        ]

    def prompt(self, query: Query, sources: Sequence[Source]) -> tuple[list[Message], list[Source]]:
        """The messages sent to the model, and the sources that fit in them."""
        context = getattr(self.generator, "context_tokens", 2048)
        budget = int((context - query.max_tokens) * 0.9)
        return build_messages(
            query.question, sources, [s.excerpt for s in sources], history=query.history,
            budget_tokens=budget, count_tokens=self.embedder.count_tokens,
        )

    def stream(self, query: Query) -> Iterator[Event]:
        """Sources, then answer tokens as they come, then Done with the checked answer."""
        self.check(query)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        hits = self.retrieve(query.question, k=query.k, mode=query.mode, filters=query.filters)
        timings["retrieve"] = time.perf_counter() - started
        log_stage("retrieve", timings["retrieve"], hits=len(hits), mode=query.mode)

        mark = time.perf_counter()
        sources = self.sources(hits)
        if hasattr(self.generator, "answer"):
            tokens = self.generator.answer(query.question, sources)
        else:
            messages, sources = self.prompt(query, sources)
            tokens = self.generator.stream(messages, max_tokens=query.max_tokens)
        timings["prompt"] = time.perf_counter() - mark
        log_stage("prompt", timings["prompt"], sources=len(sources))
        yield Sources(sources)

        mark = time.perf_counter()
        parts: list[str] = []
        usage = Usage()
        if sources:
            for event in tokens:
                if isinstance(event, Token):
                    if not parts:
                        timings["first_token"] = time.perf_counter() - mark
                        log_stage("first_token", timings["first_token"])
                    parts.append(event.text)
                    yield event
                elif isinstance(event, UsageEvent):
                    usage = event.usage
        else:
            parts.append("I don't know: no documents match this question.")
            yield Token(parts[0])
        timings["generate"] = time.perf_counter() - mark
        log_stage("generate", timings["generate"], completion_tokens=usage.completion_tokens)

        text, citations, invalid = check_citations("".join(parts).strip(), sources)
        timings["total"] = time.perf_counter() - started
        log_stage("total", timings["total"], citations=len(citations), invalid_citations=invalid)
        yield Done(
            Answer(
                question=query.question, text=text, sources=sources, citations=citations,
                invalid_citations=invalid, model=self.generator.name, usage=usage, timings=timings,
            )
        )

    def ask(self, query: Query) -> Answer:
        """The whole answer at once."""
        for event in self.stream(query):
            if isinstance(event, Done):
                return event.answer
        raise AssertionError("the stream ended without Done")  # pragma: no cover
