"""The domain's nouns (Section, Chunk, Hit, Source, Citation, Query, Answer) and the answer stream's events.

The event contract: ``Engine.stream`` yields ``Sources`` (once, before any text), ``Token``… with a ``Verdict``
after each sentence's last token, ``UsageEvent``, then ``Done`` (the whole checked answer); or, at any point, one
``ErrorEvent`` that ends the stream. ``PromptEvent`` comes before the tokens only when the query asks for it
(``--show-prompt``). ``Attempt`` events are the models' own (one per call made) and are collected into the
answer, not passed on. Every interface only translates these
(``interfaces/wire.py``).

The seams' Protocols are in ``seams.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path (and on one page, for paged formats)."""

    text: str
    heading: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a parser returns: a title and the document's sections in order."""

    title: str
    sections: list[Section]


def breadcrumb(title: str, heading: str) -> str:
    """A place in a document: the title and the heading path ("Guide > Section"), the title once."""
    return " > ".join(x for x in ("" if heading.startswith(title) else title, heading) if x)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable piece of a document, as stored."""

    id: str
    doc_id: str
    ordinal: int
    text: str
    title: str = ""
    heading: str = ""
    page: int | None = None
    tenant: str = "default"
    language: str = "en"
    tags: tuple[str, ...] = ()

    @property
    def breadcrumb(self) -> str:
        """The chunk's place: its title and heading path ("Guide > Section"), the title once."""
        return breadcrumb(self.title, self.heading)

    def context_text(self) -> str:
        """The text that is embedded and indexed: title and breadcrumb give the chunk its place."""
        head = self.breadcrumb
        return f"{head}\n\n{self.text}" if head else self.text


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk returned by retrieval with its score (higher is better) and which searches found it."""

    chunk: Chunk
    score: float
    found_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """A numbered source as the user sees it."""

    number: int
    doc_id: str
    title: str
    heading: str
    page: int | None
    score: float
    excerpt: str

    @property
    def location(self) -> str:
        """Where in the document: the heading breadcrumb and/or page."""
        parts = [self.heading] if self.heading else []
        if self.page is not None:
            parts.append(f"page {self.page}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "number": self.number,
            "doc_id": self.doc_id,
            "title": self.title,
            "heading": self.heading,
            "page": self.page,
            "score": round(self.score, 6),
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    """A ``[n]`` marker in the answer that points at a retrieved source."""

    number: int
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class Answer:
    """Everything a caller gets back for one question."""

    question: str
    text: str
    sources: list[Source]
    citations: list[Citation] = field(default_factory=list)
    invalid_citations: int = 0
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    partial: bool = False
    partial_reason: str = ""
    cache: str = "off"  # "hit", "miss" or "off"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    sentences: list[Verdict] = field(default_factory=list)  # every sentence's verdict, shown or dropped
    refused: bool = False  # the policy replaced an answer its sources did not support

    @property
    def supported(self) -> float | None:
        """The share of the shown claims (sentences that are not remarks) that their cited sources support."""
        claims = [s for s in self.sentences if s.shown and s.verdict != "remark"]
        return round(sum(s.verdict == "supported" for s in claims) / len(claims), 4) if claims else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [{"number": c.number, "doc_id": c.doc_id, "start": c.start, "end": c.end}
                          for c in self.citations],
            "invalid_citations": self.invalid_citations,
            "sources": [s.as_dict() for s in self.sources],
            "model": self.model,
            "usage": {"prompt_tokens": self.usage.prompt_tokens,
                      "completion_tokens": self.usage.completion_tokens},
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
            "partial": self.partial,
            "partial_reason": self.partial_reason,
            "cache": self.cache,
            "attempts": self.attempts,
            "sentences": [v.as_dict() for v in self.sentences],
            "supported": self.supported,
            "refused": self.refused,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The inverse of ``as_dict`` (for cached answers)."""
        sources = [Source(**s) for s in data["sources"]]
        return cls(
            question=data["question"],
            text=data["answer"],
            sources=sources,
            citations=[Citation(**c) for c in data["citations"]],
            invalid_citations=data["invalid_citations"],
            model=data["model"],
            usage=Usage(**data["usage"]),
            timings={k: v / 1000 for k, v in data["timings_ms"].items()},
            partial=data["partial"],
            partial_reason=data.get("partial_reason", ""),
            cache=data.get("cache", "off"),
            sentences=[Verdict.from_dict(v) for v in data.get("sentences", ())],
            refused=data.get("refused", False),
        )


# Stream events: every interface only translates these.
@dataclass(frozen=True, slots=True)
class Token:
    """A piece of answer text."""

    text: str
    type: Literal["token"] = "token"


@dataclass(frozen=True, slots=True)
class Sources:
    """The numbered sources the answer may cite; comes once, before any Token."""

    sources: list[Source]
    type: Literal["sources"] = "sources"


VERDICTS = ("supported", "unsupported", "uncited", "remark")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the cited sources say about one sentence of the answer; sent as soon as the sentence is complete.

    ``verdict`` is ``supported`` (its cited sources say it), ``unsupported`` (it cites sources that do not),
    ``uncited`` (a claim without a marker) or ``remark`` (not a claim: it restates the question, declines, or
    introduces a list). ``reason`` says why, for anything but ``supported``. ``shown`` is False when the
    verification policy dropped the sentence from the answer.
    """

    index: int
    text: str
    verdict: str
    sources: tuple[int, ...] = ()
    reason: str = ""
    shown: bool = True
    type: Literal["verdict"] = "verdict"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"index": self.index, "text": self.text, "verdict": self.verdict, "sources": list(self.sources),
                "reason": self.reason, "shown": self.shown}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """The inverse of ``as_dict``."""
        return cls(int(data["index"]), str(data["text"]), str(data["verdict"]), tuple(data.get("sources", ())),
                   str(data.get("reason", "")), bool(data.get("shown", True)))


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Token usage of the answer (after the last Token)."""

    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one model, as the answer's metadata reports it (a model event, collected by the engine)."""

    model: str
    outcome: str  # "ok", or the error message
    waited: float = 0.0
    type: Literal["attempt"] = "attempt"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"model": self.model, "outcome": self.outcome, "waited_s": round(self.waited, 3)}


@dataclass(frozen=True, slots=True)
class PromptEvent:
    """The exact messages sent to the model (only when the query asks: ``show_prompt``)."""

    messages: tuple[Message, ...]
    type: Literal["prompt"] = "prompt"


@dataclass(frozen=True, slots=True)
class Done:
    """The final, checked answer."""

    answer: Answer
    type: Literal["done"] = "done"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The failure that ended the stream; ``kind`` is the RaglineError's class name (also the HTTP mapping's)."""

    kind: str
    message: str
    type: Literal["error"] = "error"


Event = Sources | PromptEvent | Token | Verdict | UsageEvent | Done | ErrorEvent
ModelEvent = Token | UsageEvent | Attempt
ResponseEvent = Sources | PromptEvent | Token | UsageEvent | Attempt


IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


MAX_IMAGE_BYTES = 3_750_000  # Bedrock Converse's limit per image


@dataclass(frozen=True, slots=True)
class Image:
    """A picture sent with a question, for models that take images."""

    data: bytes
    media_type: str  # one of IMAGE_TYPES

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Image:
        """An image from a file's bytes; the type comes from the name (.png .jpg .jpeg .gif .webp)."""
        from ragline.errors import InputError, TooLargeError

        suffix = name.rsplit(".", 1)[-1].lower()
        media_type = f"image/{'jpeg' if suffix == 'jpg' else suffix}"
        if media_type not in IMAGE_TYPES:
            raise InputError(f"{name}: not an image ragline can send; use .png, .jpg, .gif or .webp")
        if len(data) > MAX_IMAGE_BYTES:
            raise TooLargeError(f"{name}: {len(data):,} bytes; images are limited to {MAX_IMAGE_BYTES:,} bytes")
        if not data:
            raise InputError(f"{name}: empty image")
        return cls(data, media_type)

    @property
    def format(self) -> str:
        """The short format name (png, jpeg, gif, webp)."""
        return IMAGE_TYPES[self.media_type]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message (a user message may carry images)."""

    role: Literal["system", "user", "assistant"]
    content: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in monotonic time by which an answer must be complete."""

    at: float

    @classmethod
    def after(cls, seconds: float | None) -> Deadline | None:
        """A deadline ``seconds`` from now (None: no deadline)."""
        return None if seconds is None else cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.remaining() <= 0


@dataclass(frozen=True, slots=True)
class Query:
    """One question and how to answer it (built from a request by ``interfaces/requests.py``)."""

    question: str
    filters: Mapping[str, str] = field(default_factory=dict)
    k: int = 5
    mode: str = "hybrid"
    history: Sequence[Message] = ()
    max_tokens: int = 256
    deadline: float | None = None  # seconds for the whole answer; at the deadline the answer is partial
    use_cache: bool = True
    images: Sequence[Image] = ()  # pictures sent with the question, for models that take images
    show_prompt: bool = False  # emit a PromptEvent with the exact messages before the answer
