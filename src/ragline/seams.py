"""One narrow Protocol per seam.

Implementations are siblings (never subclasses); each is built by name in ``compose.py`` and checked by its
contract suite in ``tests/contracts/``.

The query path uses these: a ``Retriever`` finds the passages (an ``Embedder`` and a ``Store`` sit under the
store's own retriever), a ``Reranker`` may reorder them, a ``RelevanceGate`` decides whether they can answer at
all, a ``Responder`` turns a question and its passages into answer events, and a ``Verifier`` judges each
sentence of the answer against the sources it cites. The registry is
split by concern, so each consumer takes only what it needs; one class (SQLite, DynamoDB) may implement several.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragline.types import (
    Chunk,
    Deadline,
    Hit,
    Message,
    ModelEvent,
    ParsedDocument,
    Query,
    ResponseEvent,
    Source,
    Vectors,
)


class Parser(Protocol):
    """Bytes of one media type to a parsed document."""

    def parse(self, data: bytes, name: str) -> ParsedDocument:
        """Parse ``data``; ``name`` gives the file name for titles and messages."""
        ...


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors."""

    @property
    def name(self) -> str:
        """The model's name (an index remembers which embedder built it)."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    @property
    def tokenizer(self) -> Any:
        """The model's ``tokenizers.Tokenizer`` when it has one (chunkers then count exactly), else None."""
        ...

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """One vector per text, shape (len(texts), dimension)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in this model's tokens."""
        ...


class Store(Protocol):
    """Where ragline's own chunks live (LanceDB, OpenSearch): writes by document, vector and BM25 search."""

    @property
    def dimension(self) -> int:
        """Length of the stored vectors."""
        ...

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

    def passages(self, filters: Mapping[str, str], limit: int) -> list[Chunk]:
        """Up to ``limit`` chunks matching ``filters`` (a document's, with ``doc_id``), in reading order."""
        ...

    def describe(self) -> str:
        """What the store holds, in one line (``ragline doctor``); reaching it is the check."""
        ...


class HybridSearch(Protocol):
    """A store that fuses vector and BM25 rankings itself, in one request (OpenSearch's hybrid query)."""

    def search_hybrid(self, text: str, vector: Vectors, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """The best ``k`` chunks by the store's own fusion."""
        ...


class Retriever(Protocol):
    """Finds the passages for a question, always limited to the caller's tenant."""

    @property
    def name(self) -> str:
        """What retrieves: ``store``, ``opensearch-hybrid``, ``kendra``, ``knowledge-base``."""
        ...

    @property
    def has_modes(self) -> bool:
        """Whether ``mode`` chooses the search (a managed service searches its own way: one mode, one bill)."""
        ...

    def retrieve(self, question: str, *, k: int, mode: str, filters: Mapping[str, str], tenant: str) -> list[Hit]:
        """The best ``k`` passages; ``mode`` (hybrid, vector, bm25) is honoured where the retriever has modes."""
        ...


class Reranker(Protocol):
    """A second stage: reorders the retrieved passages by a model that reads question and passage together."""

    @property
    def name(self) -> str:
        """What reranks (part of the answer-cache key)."""
        ...

    def rerank(self, question: str, hits: Sequence[Hit], k: int, deadline: Deadline | None = None) -> list[Hit]:
        """The best ``k`` of ``hits``, best first, scored by the reranker."""
        ...


class Verifier(Protocol):
    """Judges whether the sources an answer's sentence cites say what the sentence claims."""

    @property
    def name(self) -> str:
        """What verifies (shown by ``ragline doctor``)."""
        ...

    def check(self, question: str, claim: str, cited: Sequence[Source]) -> tuple[str, str]:
        """``("supported", "")`` or ``("unsupported", reason)`` for one claim (markers removed) and its sources."""
        ...

    def describe(self) -> str:
        """What it needs, for ``ragline doctor``."""
        ...


class RelevanceGate(Protocol):
    """Decides, before any answer is written, whether the passages found can answer the question at all."""

    def unanswerable(self, question: str, sources: Sequence[Source]) -> str:
        """Why these sources cannot answer the question, or "" when they may."""
        ...


class ChatModel(Protocol):
    """Generates text as a stream of events from a list of messages."""

    @property
    def name(self) -> str:
        """The model's name as answers report it."""
        ...

    @property
    def context_tokens(self) -> int:
        """The model's context window, in tokens."""
        ...

    @property
    def accepts_images(self) -> bool:
        """True when a user message may carry images."""
        ...

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Yield Token events, a UsageEvent when the model reports usage, and an Attempt per call made."""
        ...

    def describe(self) -> str:
        """Check the model can answer, as ``ragline doctor`` reports it (a file present, a one-token reply)."""
        ...

    def close(self) -> None:
        """Free what the model holds (llama.cpp memory, HTTP connections)."""
        ...


class Responder(Protocol):
    """Turns a question and its sources into answer events.

    ``Sources`` first, then ``Token``/``UsageEvent``/``Attempt`` events. Siblings: a prompted chat model, the
    extractive answerer, a knowledge base's RetrieveAndGenerate.
    """

    @property
    def name(self) -> str:
        """The model's name as answers and the cache key report it."""
        ...

    @property
    def accepts_images(self) -> bool:
        """True when questions may carry images."""
        ...

    @property
    def retrieves(self) -> bool:
        """True when it finds its own sources (the engine then retrieves nothing and passes none)."""
        ...

    def respond(
        self, query: Query, sources: Sequence[Source], *, tenant: str, deadline: Deadline | None
    ) -> Generator[ResponseEvent, None, None]:
        """Stream the answer; closing the generator stops the model."""
        ...

    def describe(self) -> str:
        """Check the responder can answer, as ``ragline doctor`` reports it."""
        ...

    def close(self) -> None:
        """Free what the responder's model holds."""
        ...


# The registry, by concern.
@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One ingested document as the registry tracks it."""

    tenant: str
    doc_id: str
    title: str
    sha256: str
    status: str  # "ready" or "failed"
    chunks: int
    bytes: int
    ingested_at: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (without the tenant, which the caller already is)."""
        return {"doc_id": self.doc_id, "title": self.title, "status": self.status, "chunks": self.chunks,
                "bytes": self.bytes, "ingested_at": self.ingested_at, "error": self.error}


class Documents(Protocol):
    """Which documents a tenant has, with their hash, status and size."""

    def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """One document's record."""
        ...

    def hashes(self, tenant: str) -> dict[str, tuple[str, str]]:
        """doc_id → (sha256, status) for every document of the tenant."""
        ...

    def put_many(self, records: builtins.list[DocumentRecord]) -> None:
        """Insert or replace records."""
        ...

    def delete(self, tenant: str, doc_id: str) -> bool:
        """Forget a document; False when it was not there."""
        ...

    def list(self, tenant: str, prefix: str = "") -> builtins.list[DocumentRecord]:
        """The tenant's documents whose id starts with ``prefix``."""
        ...


class IndexMeta(Protocol):
    """Facts about the index: which embedder built it, and each tenant's index version (the cache's epoch)."""

    def get_meta(self, key: str) -> str | None:
        """A stored fact."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Store a fact."""
        ...

    def index_version(self, tenant: str) -> int:
        """The tenant's index version."""
        ...

    def bump_index_version(self, tenant: str) -> int:
        """Advance the tenant's index version (after any write); returns the new one."""
        ...


class Catalog(Documents, IndexMeta, Protocol):
    """What ingestion reads and writes: the documents and the index's facts."""


class AnswerStore(IndexMeta, Protocol):
    """Cached answers as JSON text, with an expiry; keys embed the index version."""

    def answer_get(self, key: str, at: float) -> str | None:
        """The answer stored under ``key`` unless it expired before ``at``."""
        ...

    def answer_put(self, key: str, tenant: str, value: str, expires_at: float) -> None:
        """Store an answer."""
        ...

    def answer_clear(self, tenant: str | None = None) -> int:
        """Drop the tenant's (or every) cached answer; returns how many."""
        ...

    def answer_count(self, at: float) -> tuple[int, int]:
        """(live, expired) entries."""
        ...


class KeyStore(Protocol):
    """API keys, stored by hash, each acting for one tenant."""

    def key_add(self, key_id: str, tenant: str, name: str, key_hash: str) -> None:
        """Store a new key's hash."""
        ...

    def key_tenant(self, key_hash: str) -> str | None:
        """The tenant of an active key."""
        ...

    def key_list(self) -> builtins.list[tuple[str, str, str, float, float | None]]:
        """(id, tenant, name, created, revoked) of every key."""
        ...

    def key_revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no active key has that id."""
        ...


def interrupted_reason(attempts: int) -> str:
    """Why a job that kept being interrupted is failed rather than started again."""
    return (f"interrupted {attempts} times while ingesting (the process stopped or ran out of memory); not "
            "started again automatically: remove the file that causes it, or retry the job")


class JobStore(Protocol):
    """The durable ingestion queue."""

    def job_add(self, job_id: str, tenant: str, files: str) -> None:
        """Queue a job (``files`` is JSON)."""
        ...

    def job_claim(self) -> tuple[str, str, str] | None:
        """(job id, tenant, files) of the oldest queued job, now marked running; None when none waits."""
        ...

    def job_update(self, job_id: str, *, status: str | None = None, progress: str | None = None,
                   error: str | None = None) -> None:
        """Record a job's status, progress (JSON) or error."""
        ...

    def job_get(self, tenant: str, job_id: str) -> dict[str, object] | None:
        """A job of the tenant, or None."""
        ...

    def job_status(self, job_id: str) -> str | None:
        """Any tenant's job's status (queued, running, done, failed); None when there is no such job."""
        ...

    def job_retry(self, tenant: str, job_id: str) -> bool:
        """Queue a failed job again."""
        ...

    def jobs_waiting(self) -> int:
        """Jobs queued or running."""
        ...

    def jobs_requeue_running(self, max_attempts: int) -> int:
        """Queue again the jobs a crash left running; returns how many.

        A job already started ``max_attempts`` times is failed instead, with the reason (a file that kills the
        process would otherwise run again at every start: a poison pill).
        """
        ...


class Conversations(Protocol):
    """The recent turns of each conversation, by tenant and conversation id, kept across restarts."""

    def history(self, tenant: str, conversation: str) -> tuple[Message, ...]:
        """The messages so far (oldest first, at most the last few turns)."""
        ...

    def remember(self, tenant: str, conversation: str, question: str, answer: str) -> None:
        """Append one turn."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a credential names, and what must stay true for it to keep naming them (on long-lived connections)."""

    tenant: str
    method: str  # none | api_key | jwt
    key_hash: str = ""  # an API key's stored hash: it must still be a live key
    expires_at: float = math.inf  # a token's expiry (seconds since the epoch)


class Connections(Protocol):
    """Open API Gateway WebSocket connections and who signed in on each."""

    def connection_put(self, connection_id: str, identity: Identity) -> None:
        """Record a connection."""
        ...

    def connection_identity(self, connection_id: str) -> Identity | None:
        """Who signed in on a live connection."""
        ...

    def connection_delete(self, connection_id: str) -> None:
        """Forget a connection."""
        ...


class Registry(Documents, AnswerStore, KeyStore, JobStore, Conversations, Protocol):
    """Everything the local and DynamoDB registries hold; consumers take the narrow protocol they need."""

    def close(self) -> None:
        """Release connections."""
        ...
