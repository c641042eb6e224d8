"""The query path: question → cache? → retrieve → rerank? → answerable? → respond → verify → cite-check → cache.

Retrieval is always tenant-scoped; the answer streams, and every sentence is verified as soon as it is complete.

``Engine.stream`` is the only producer of an answer. Its events, in this order (``types.py`` says the same):

    Sources → (Token* Verdict)* → UsageEvent → Done      or, at any point, one ErrorEvent that ends the stream.

With ``RAGLINE_VERIFY=drop`` a sentence's text comes with its verdict (dropped ones never); with ``refuse`` the
text comes once, after the last verdict (``query/verify.py``).

(``PromptEvent`` precedes the tokens only when the query asks for it.) Every ``RaglineError`` becomes the
``ErrorEvent`` here, in one place; ``Engine.ask`` is the same stream collected, raising that error instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragline.errors import InputError, ModelUnavailableError, RaglineError, error_by_name
from ragline.query.cache import AnswerCache
from ragline.query.citations import check_citations
from ragline.query.retrieval import search_text
from ragline.query.verify import NO_SOURCES, Checker
from ragline.resilience import DeadlineExceededError, within
from ragline.seams import RelevanceGate, Reranker, Responder, Retriever, Verifier
from ragline.types import (
    Answer,
    Attempt,
    Deadline,
    Done,
    ErrorEvent,
    Event,
    Hit,
    PromptEvent,
    Query,
    ResponseEvent,
    Source,
    Sources,
    Token,
    Usage,
    UsageEvent,
    Verdict,
)

log = logging.getLogger("ragline")
SECOND_LOOK = 15  # passages past the k best that the relevance gate may take one from
SECOND_LOOK_WORDS = 3  # ... and, for a hybrid search, BM25's best (the passages that hold the question's words)


def log_stage(stage: str, seconds: float, **extra: object) -> None:
    """One structured log line per stage, with its duration."""
    log.info(json.dumps({"stage": stage, "ms": round(seconds * 1000, 1), **extra}, default=str))


@dataclass(slots=True)
class _Run:
    """One answer being made: its sources, text so far, usage, attempts, timings, and why it stopped early."""

    query: Query
    started: float
    checker: Checker
    timings: dict[str, float] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    attempts: list[Attempt] = field(default_factory=list)
    reason: str = ""

    def lap(self, stage: str, since: float, **extra: object) -> None:
        """Record and log a stage that began at ``since``."""
        self.timings[stage] = time.perf_counter() - since
        log_stage(stage, self.timings[stage], **extra)

    def follow(self, events: Generator[ResponseEvent, None, None], deadline: Deadline | None,
               ) -> Generator[Sources | PromptEvent | Token | Verdict, None, None]:
        """Pass the responder's events on (its text through the checker) until it ends, or the deadline passes.

        A model that fails for good after it began to answer leaves the text so far, marked partial.
        """
        mark = time.perf_counter()
        try:
            for event in events:
                if isinstance(event, Token):
                    if not self.parts:
                        self.lap("first_token", mark)
                    self.parts.append(event.text)
                    yield from self.checker.feed(event.text)
                elif isinstance(event, Sources):
                    self.sources = self.checker.sources = event.sources
                    self.lap("prompt", mark, sources=len(event.sources))
                    yield event
                elif isinstance(event, UsageEvent):
                    self.usage = event.usage
                elif isinstance(event, Attempt):
                    self.attempts.append(event)
                elif self.query.show_prompt:
                    yield event
                if deadline is not None and deadline.expired():
                    self.reason = f"the deadline of {self.query.deadline:g} s was reached"
                    break
        except ModelUnavailableError as err:  # retries and failover are spent: keep what was said
            if not self.parts and not isinstance(err, DeadlineExceededError):
                raise
            self.reason = str(err)
        finally:
            events.close()  # stop the model now, not when the generator is collected
        self.lap("generate", mark, completion_tokens=self.usage.completion_tokens)


class Engine:
    """Answers questions for one tenant over injected parts."""

    def __init__(self, *, retriever: Retriever, responder: Responder, tenant: str, cache: AnswerCache | None = None,
                 max_question_chars: int = 4000, cache_conversations: bool = False,
                 reranker: Reranker | None = None, rerank_depth: int = 20, verifier: Verifier | None = None,
                 gate: RelevanceGate | None = None, verify: str = "annotate", verify_threshold: float = 0.5) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self.responder = responder
        self.tenant = tenant
        self.cache = cache
        self.max_question_chars = max_question_chars
        self.cache_conversations = cache_conversations
        self.verifier = verifier
        self.gate = gate
        self.verify = verify
        self.verify_threshold = verify_threshold

    def check(self, query: Query) -> None:
        """Refuse questions that cannot be served, saying why (before anything streams)."""
        if not query.question.strip():
            raise InputError("the question is empty")
        if len(query.question) > self.max_question_chars:
            raise InputError(
                f"the question is {len(query.question):,} characters; the limit is "
                f"{self.max_question_chars:,} (RAGLINE_MAX_QUESTION_CHARS)"
            )
        if query.images and not self.responder.accepts_images:
            raise InputError(
                f"the model {self.responder.name} does not take images; use a Bedrock model that does "
                "(Claude 3 or later, Nova Lite/Pro)"
            )

    def retrieve(self, question: str, *, k: int = 5, mode: str = "hybrid",
                 filters: dict[str, str] | None = None) -> list[Hit]:
        """The best ``k`` passages for the question, always limited to this engine's tenant."""
        return self.retriever.retrieve(question, k=k, mode=mode, filters=filters or {}, tenant=self.tenant)

    @staticmethod
    def sources(hits: Sequence[Hit]) -> list[Source]:
        """Number the hits as the sources the answer may cite."""
        return [
            Source(n, h.chunk.doc_id, h.chunk.title, h.chunk.heading, h.chunk.page, h.score, h.chunk.text)
            for n, h in enumerate(hits, start=1)
        ]

    def _cache_key(self, query: Query) -> str | None:
        if self.cache is None or not query.use_cache or query.images or query.show_prompt or (
            query.history and not self.cache_conversations
        ):
            return None
        return self.cache.key(question=query.question, filters=query.filters, k=query.k, mode=query.mode,
                              tenant=self.tenant, model=f"{self.responder.name}+{self.verify}",
                              retriever=self.retriever.name + (f"+{self.reranker.name}" if self.reranker else ""))

    def stream(self, query: Query) -> Generator[Event, None, None]:
        """The answer as events, in the documented order; a cache hit touches neither store nor model.

        At the deadline, or when the model fails after it began to answer, the text so far is returned marked
        partial, with the reason. Closing the generator stops the model.
        """
        try:
            yield from self._stream(query)
        except RaglineError as err:
            log_stage("error", 0.0, error=type(err).__name__)
            yield ErrorEvent(type(err).__name__, str(err))

    def _stream(self, query: Query) -> Generator[Event, None, None]:
        self.check(query)
        deadline = Deadline.after(query.deadline)  # every stage's remote calls are bounded by it
        checker = Checker(self.verifier, query.question, [], self.verify, self.verify_threshold, deadline=deadline)
        run = _Run(query, time.perf_counter(), checker)
        key = self._cache_key(query)
        cached = self.cache.get(key) if key is not None and self.cache is not None else None
        if cached is not None:
            yield from self._replay(cached, run.started)
            return
        hits: list[Hit] = []
        searched = search_text(query.question, query.history)  # the question, with what a follow-up points back to
        if not self.responder.retrieves:
            wanted = max(query.k, self.rerank_depth) if self.reranker is not None else query.k
            with within(deadline):
                hits = self.retrieve(searched, k=wanted, mode=query.mode, filters=dict(query.filters))
            run.lap("retrieve", run.started, hits=len(hits), mode=query.mode)
            if self.reranker is not None:
                mark = time.perf_counter()
                hits = self.reranker.rerank(query.question, hits, query.k, deadline)
                run.lap("rerank", mark, hits=len(hits), reranker=self.reranker.name)
        sources = self.sources(hits)
        why_not = ""
        if self.gate is not None and hits and not query.images:  # a question about a picture is not gated
            mark = time.perf_counter()
            with within(deadline):
                why_not = self.gate.unanswerable(searched, sources)
                if why_not and not self.responder.retrieves:
                    hits, why_not = self._second_look(searched, query, hits, why_not)
                    sources = self.sources(hits)
            run.lap("gate", mark, answerable=not why_not)
        if (hits or self.responder.retrieves) and not why_not:
            events = self.responder.respond(query, sources, tenant=self.tenant, deadline=deadline)
            yield from run.follow(events, deadline)
        else:
            run.sources = checker.sources = sources
            yield Sources(sources)
            yield from checker.feed(f"I don't know: {why_not}." if why_not else NO_SOURCES)
        yield from checker.finish()
        run.timings["verify"] = checker.seconds
        text, citations, invalid = check_citations(checker.text.strip(), run.sources)
        run.lap("total", run.started, citations=len(citations), invalid_citations=invalid, partial=bool(run.reason),
                supported=sum(v.verdict == "supported" for v in checker.verdicts), sentences=len(checker.verdicts))
        answer = Answer(
            question=query.question, text=text, sources=run.sources, citations=citations,
            invalid_citations=invalid, model=self.responder.name, usage=run.usage, timings=run.timings,
            partial=bool(run.reason), partial_reason=run.reason, cache="off" if key is None else "miss",
            attempts=[a.as_dict() for a in run.attempts], sentences=checker.verdicts, refused=checker.refused,
        )
        if key is not None and self.cache is not None and not answer.partial:
            try:
                self.cache.put(key, self.tenant, answer.as_dict())
            except RaglineError as err:  # caching is best effort: an answer DynamoDB cannot hold is still given
                log_stage("cache", 0.0, cache="not stored", error=str(err)[:300])
        yield UsageEvent(answer.usage)
        yield Done(answer)

    @staticmethod
    def _replay(cached: dict[str, Any], started: float) -> Generator[Event, None, None]:
        answer = Answer.from_dict(cached)
        answer.cache = "hit"
        answer.timings = {"total": time.perf_counter() - started}
        log_stage("cache", answer.timings["total"], cache="hit")
        yield Sources(answer.sources)
        yield Token(answer.text)
        yield from answer.sentences
        yield UsageEvent(answer.usage)
        yield Done(answer)

    def _second_look(self, text: str, query: Query, hits: list[Hit], why_not: str) -> tuple[list[Hit], str]:
        """The gate found the best k unable to answer: look deeper for one passage that makes them able.

        The k-th passage is swapped for the first of the next ``SECOND_LOOK`` (then of BM25's ``SECOND_LOOK_WORDS``
        best) whose company the gate accepts: a question naming something (a reserved word, an instance type) that
        only a lower-ranked passage of the right page contains is answered from it instead of declined.
        """
        deeper = self.retrieve(text, k=len(hits) + SECOND_LOOK, mode=query.mode, filters=dict(query.filters))
        if query.mode == "hybrid" and self.retriever.has_modes:
            # fusion may have ranked low the passages that hold the question's words: BM25's best are tried too
            deeper += self.retrieve(text, k=SECOND_LOOK_WORDS, mode="bm25", filters=dict(query.filters))
        seen = {h.chunk.id for h in hits}
        keep = hits[:-1] if len(hits) > 1 else []
        fresh = {h.chunk.id: h for h in deeper if h.chunk.id not in seen}
        for candidate in list(fresh.values())[: SECOND_LOOK + SECOND_LOOK_WORDS]:
            trial = [*keep, candidate]
            if self.gate is not None and not self.gate.unanswerable(text, self.sources(trial)):
                return trial, ""
        return hits, why_not

    def ask(self, query: Query) -> Answer:
        """The whole answer at once; the stream's error is raised as the RaglineError it came from."""
        return collect(self.stream(query))


def collect(events: Generator[Event, None, None]) -> Answer:
    """The finished answer of an event stream; its ErrorEvent is raised as the error it names."""
    try:
        for event in events:
            if isinstance(event, Done):
                return event.answer
            if isinstance(event, ErrorEvent):
                raise error_by_name(event.kind, event.message)
    finally:
        events.close()
    raise AssertionError("the stream ended without Done or ErrorEvent")  # pragma: no cover
