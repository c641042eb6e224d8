"""The query path: question → retrieve (vector + BM25 fused; filters; tenant) → prompt → generate → cite-check.

Every interface consumes ``Engine.stream``'s events; ``Engine.ask`` is the same stream, collected.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ragline.errors import InputError, ModelUnavailableError
from ragline.providers.local.lancedb import fuse
from ragline.providers.local.minilm import QueryEmbeddingCache
from ragline.query.cache import AnswerCache
from ragline.query.citations import check_citations, insert_marks
from ragline.query.prompts import build_messages
from ragline.resilience import DeadlineExceededError, ResilientChatModel
from ragline.types import (
    Answer,
    Answerer,
    AnswerModel,
    ChatModel,
    Deadline,
    Done,
    Embedder,
    Event,
    Hit,
    Image,
    Message,
    ModelEvent,
    OneCallAnswerer,
    Retriever,
    Source,
    Sources,
    Store,
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
    deadline: float | None = None  # seconds for the whole answer; at the deadline the answer is partial
    use_cache: bool = True
    images: Sequence[Image] = ()  # pictures sent with the question, for models that take images


def log_stage(stage: str, seconds: float, **extra: object) -> None:
    """One structured log line per stage, with its duration."""
    log.info(json.dumps({"stage": stage, "ms": round(seconds * 1000, 1), **extra}, default=str))


@dataclass(slots=True)
class _Generation:
    """The state of one answer being generated: text so far, usage, timings, and why it stopped early."""

    query: Query
    timings: dict[str, float]
    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    reason: str = ""
    generator: object = None

    def lap(self, stage: str, since: float, **extra: object) -> None:
        """Record and log a stage that began at ``since``."""
        self.timings[stage] = time.perf_counter() - since
        log_stage(stage, self.timings[stage], **extra)

    def consume(self, tokens: Iterator[ModelEvent], deadline: Deadline | None, since: float) -> Iterator[Token]:
        """Pass tokens through until the model ends, the deadline passes, or the model fails for good."""
        try:
            for event in tokens:
                if isinstance(event, Token):
                    if not self.parts:
                        self.lap("first_token", since)
                    self.parts.append(event.text)
                    yield event
                elif isinstance(event, UsageEvent):
                    self.usage = event.usage
                if deadline is not None and deadline.expired():
                    self.reason = f"the deadline of {self.query.deadline:g} s was reached"
                    break
        except ModelUnavailableError as err:  # retries and failover are spent: keep what was said
            if not self.parts and not isinstance(err, DeadlineExceededError):
                raise
            self.reason = str(err)
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # stop the model now, not when the generator is collected


class Engine:
    """Answers questions for one tenant over injected parts."""

    def __init__(
        self,
        *,
        store: Store,
        embedder: Embedder,
        generator: AnswerModel,
        tenant: str,
        query_cache_size: int = 1024,
        max_question_chars: int = 4000,
        rrf_k: int = 60,
        fusion_depth: int = 50,
        cache: AnswerCache | None = None,
        cache_conversations: bool = False,
        retriever: Retriever | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.generator = generator
        self.tenant = tenant
        self.queries = QueryEmbeddingCache(embedder, query_cache_size)
        self.max_question_chars = max_question_chars
        self.rrf_k = rrf_k
        self.fusion_depth = fusion_depth
        self.cache = cache
        self.cache_conversations = cache_conversations
        self.retriever = retriever

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
        if query.images and not getattr(self.generator, "accepts_images", False):
            raise InputError(
                f"the model {self.generator.name} does not take images; use a Bedrock model that does "
                "(Claude 3 or later, Nova Lite/Pro)"
            )

    def retrieve(self, question: str, *, k: int = 5, mode: str = "hybrid",
                 filters: Mapping[str, str] | None = None) -> list[Hit]:
        """The best ``k`` chunks for the question, always limited to this engine's tenant."""
        if self.retriever is not None:
            return self.retriever.retrieve(question, k=k, filters=filters or {}, tenant=self.tenant)
        scoped = {**(filters or {}), "tenant": self.tenant}
        depth = max(k, self.fusion_depth) if mode == "hybrid" else k
        if mode == "hybrid" and getattr(self.store, "native_hybrid", False):
            return self.store.search_hybrid(question, self.queries.embed(question), k, scoped)  # type: ignore[attr-defined, no-any-return]
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
        messages, used = build_messages(
            query.question, sources, [s.excerpt for s in sources], history=query.history,
            budget_tokens=budget, count_tokens=self.embedder.count_tokens,
        )
        if query.images:
            messages[-1] = Message("user", messages[-1].content, tuple(query.images))
        return messages, used

    def _cache_key(self, query: Query) -> str | None:
        if self.cache is None or not query.use_cache or query.images or (
            query.history and not self.cache_conversations
        ):
            return None
        return self.cache.key(question=query.question, filters=query.filters, k=query.k, mode=query.mode,
                              tenant=self.tenant, model=self.generator.name)

    def stream(self, query: Query) -> Generator[Event, None, None]:
        """Sources, then answer tokens as they come, then Done with the checked answer.

        A cache hit answers without touching the store or the model. At the deadline, or when the model fails
        after it began to answer, the text so far is returned marked partial, with the reason.
        """
        self.check(query)
        started = time.perf_counter()
        key = self._cache_key(query)
        cached = self.cache.get(key) if key is not None and self.cache is not None else None
        if cached is not None:
            yield from self._replay(cached, started)
            return
        deadline = Deadline.after(query.deadline)
        run = _Generation(query=query, timings={})
        if isinstance(self.generator, OneCallAnswerer):
            sources = yield from self._respond(query, self.generator, run, deadline)
        else:
            sources = yield from self._generate(query, run, deadline, started)
        text, citations, invalid = check_citations("".join(run.parts).strip(), sources)
        run.lap("total", started, citations=len(citations), invalid_citations=invalid, partial=bool(run.reason))
        attempts = getattr(run.generator, "attempts", [])
        answer = Answer(
            question=query.question, text=text, sources=sources, citations=citations,
            invalid_citations=invalid, model=self.generator.name, usage=run.usage, timings=run.timings,
            partial=bool(run.reason), partial_reason=run.reason, cache="off" if key is None else "miss",
            attempts=[{"model": a.model, "outcome": a.outcome, "waited_s": round(a.waited, 3)} for a in attempts],
        )
        if key is not None and self.cache is not None and not answer.partial:
            self.cache.put(key, self.tenant, answer.as_dict())
        yield Done(answer)

    def _generate(self, query: Query, run: _Generation, deadline: Deadline | None,
                  started: float) -> Generator[Event, None, list[Source]]:
        """Retrieve, prompt, and stream the model's tokens; returns the sources the answer may cite."""
        hits = self.retrieve(query.question, k=query.k, mode=query.mode, filters=query.filters)
        run.lap("retrieve", started, hits=len(hits), mode=query.mode)

        mark = time.perf_counter()
        sources = self.sources(hits)
        generator = self.generator.for_call() if isinstance(self.generator, ResilientChatModel) else self.generator
        run.generator = generator
        if isinstance(generator, ChatModel):
            messages, sources = self.prompt(query, sources)
            tokens = generator.stream(messages, max_tokens=query.max_tokens, deadline=deadline)
        else:
            tokens = cast(Answerer, generator).answer(query.question, sources)
        run.lap("prompt", mark, sources=len(sources))
        yield Sources(sources)

        mark = time.perf_counter()
        if sources:
            yield from run.consume(tokens, deadline, mark)
        else:
            run.parts.append("I don't know: no documents match this question.")
            yield Token(run.parts[0])
        run.lap("generate", mark, completion_tokens=run.usage.completion_tokens)
        return sources

    def _respond(self, query: Query, answerer: OneCallAnswerer, run: _Generation,
                 deadline: Deadline | None) -> Generator[Event, None, list[Source]]:
        """One call retrieves and answers: tokens as they come, then the sources it cited, with its markers."""
        mark = time.perf_counter()
        reply = answerer.respond(query.question, k=query.k, filters=query.filters, tenant=self.tenant,
                                 deadline=deadline)
        yield from run.consume(iter(reply), deadline, mark)
        run.lap("generate", mark, mode="retrieve_and_generate", sources=len(reply.sources))
        text = "".join(run.parts)
        run.parts = [insert_marks(text, reply.marks(text))]
        yield Sources(reply.sources)
        return reply.sources

    @staticmethod
    def _replay(cached: dict[str, Any], started: float) -> Iterator[Event]:
        answer = Answer.from_dict(cached)
        answer.cache = "hit"
        answer.timings = {"total": time.perf_counter() - started}
        log_stage("cache", answer.timings["total"], cache="hit")
        yield Sources(answer.sources)
        yield Token(answer.text)
        yield Done(answer)

    def ask(self, query: Query) -> Answer:
        """The whole answer at once."""
        for event in self.stream(query):
            if isinstance(event, Done):
                return event.answer
        raise AssertionError("the stream ended without Done")  # pragma: no cover
