"""The domain's nouns (Section, Chunk, Hit, Source, Citation, Answer), stream events, and one Protocol per seam."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

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

    def context_text(self) -> str:
        """The text that is embedded and indexed: title and breadcrumb give the chunk its place."""
        title = "" if self.heading.startswith(self.title) else self.title
        head = " > ".join(x for x in (title, self.heading) if x)
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
        )


# Stream events: every interface only translates these.
@dataclass(frozen=True, slots=True)
class Token:
    """A piece of answer text."""

    text: str
    type: Literal["token"] = "token"


@dataclass(frozen=True, slots=True)
class Sources:
    """The numbered sources the answer may cite."""

    sources: list[Source]
    type: Literal["sources"] = "sources"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Token usage reported by the model."""

    usage: Usage
    type: Literal["usage"] = "usage"


@dataclass(frozen=True, slots=True)
class Done:
    """The final, checked answer."""

    answer: Answer
    type: Literal["done"] = "done"


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A failure after the stream began."""

    message: str
    type: Literal["error"] = "error"


Event = Token | Sources | UsageEvent | Done | ErrorEvent
ModelEvent = Token | UsageEvent


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


# Seams.
@runtime_checkable
class Parser(Protocol):
    """Bytes of one media type to a parsed document."""

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Parse ``data``; ``name`` gives the file name for titles and messages."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors."""

    name: str
    dimension: int

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, shape (len(texts), dimension)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in this model's tokens."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """Generates an answer as a stream of events from a list of messages."""

    @property
    def name(self) -> str:
        """The model's name as answers report it."""
        ...

    @property
    def context_tokens(self) -> int:
        """The model's context window, in tokens."""
        ...

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Iterator[ModelEvent]:
        """Yield Token events, and a UsageEvent when the model reports usage; give up at the deadline."""
        ...


@runtime_checkable
class Answerer(Protocol):
    """A generator that needs no prompt: picks the answer from the sources (extractive)."""

    name: str

    def answer(self, question: str, sources: Sequence[Source]) -> Iterator[ModelEvent]:
        """Yield the answer's Token events."""
        ...


class GroundedReply(Protocol):
    """A one-call answer being streamed: its tokens, then the sources it cites and where."""

    sources: list[Source]

    def __iter__(self) -> Iterator[ModelEvent]:
        """The answer's Token events."""
        ...

    def marks(self, text: str) -> list[tuple[int, tuple[int, ...]]]:
        """(offset in ``text``, source numbers): where each cited passage ends."""
        ...

    def close(self) -> None:
        """Stop the answer."""
        ...


@runtime_checkable
class OneCallAnswerer(Protocol):
    """Retrieves and answers in one call (Bedrock RetrieveAndGenerate): ragline neither retrieves nor prompts."""

    name: str

    def respond(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str,
                deadline: Deadline | None = None) -> GroundedReply:
        """Start the answer."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the passages for a question (used instead of the store's own search, e.g. Amazon Kendra)."""

    name: str

    def retrieve(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str) -> list[Hit]:
        """The best ``k`` passages for the question, limited to the tenant."""
        ...


@runtime_checkable
class Store(Protocol):
    """Where ragline's own chunks live (LanceDB, OpenSearch): writes by document, vector and BM25 search."""

    dimension: int

    def replace_documents(
        self, tenant: str, doc_ids: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors, *, fresh: bool
    ) -> None:
        """Make ``chunks`` the whole content of ``doc_ids`` (``fresh``: none of them is stored yet)."""
        ...

    def delete_document(self, tenant: str, doc_id: str) -> None:
        """Remove every chunk of one document."""
        ...

    def refresh_indexes(self) -> None:
        """Make what was written searchable (full-text index, refresh)."""
        ...

    def count(self, filters: Mapping[str, str] | None = None) -> int:
        """Chunks matching ``filters``."""
        ...

    def search_vector(self, vector: Vectors, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Nearest chunks by cosine similarity; score (1 + cosine) / 2."""
        ...

    def search_text(self, text: str, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Best chunks by BM25 over title, breadcrumb and text."""
        ...


AnswerModel = ChatModel | Answerer | OneCallAnswerer  # what the settings' chat_model builds
