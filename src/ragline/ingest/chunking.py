"""Structure-aware, token-budgeted chunking.

Sections (from the parser) keep their heading breadcrumb and page. Small neighbouring sections on the same
page are packed together up to the budget; long ones are split by ``semantic-text-splitter`` (Rust; splits
at the largest semantic unit that fits: paragraphs, then sentences, then words) counting tokens with the
embedding model's own tokenizer, with overlap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragline.types import Chunk, ParsedDocument, Section


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """A chunk's text and place, before it gets its identity."""

    text: str
    heading: str
    page: int | None


class Chunker:
    """Splits parsed documents into chunks of at most ``tokens`` tokens with ``overlap`` between them."""

    def __init__(self, tokenizer: Any, count: Callable[[str], int], tokens: int = 200, overlap: int = 32) -> None:
        from semantic_text_splitter import TextSplitter

        self.tokens = tokens
        self.overlap = overlap
        self._count = count
        overlap = min(overlap, tokens // 2)
        if tokenizer is not None:
            self._splitter = TextSplitter.from_huggingface_tokenizer(tokenizer, capacity=tokens, overlap=overlap)
        else:
            self._splitter = TextSplitter.from_callback(count, capacity=tokens, overlap=overlap)

    def plan(self, doc: ParsedDocument) -> list[ChunkPlan]:
        """The chunks of one document, in order."""
        plans: list[ChunkPlan] = []
        pending: list[Section] = []
        pending_tokens = 0

        def flush() -> None:
            nonlocal pending_tokens
            if pending:
                first = pending[0]
                parts = [first.text]
                for sec in pending[1:]:
                    nested = sec.heading[: len(first.heading)] == first.heading
                    extra = sec.heading[len(first.heading) :] if nested else sec.heading[-1:]
                    parts.append("\n".join([*extra, sec.text]))
                plans.append(ChunkPlan("\n\n".join(parts), " > ".join(first.heading), first.page))
            pending.clear()
            pending_tokens = 0

        for sec in doc.sections:
            size = self._count(sec.text) + len(sec.heading) * 4
            if size > self.tokens:
                flush()
                heading = " > ".join(sec.heading)
                plans.extend(ChunkPlan(t, heading, sec.page) for t in self._splitter.chunks(sec.text))
                continue
            if pending and (pending_tokens + size > self.tokens or sec.page != pending[0].page):
                flush()
            pending.append(sec)
            pending_tokens += size
        flush()
        return [p for p in plans if p.text.strip()]

    def chunk(
        self,
        doc: ParsedDocument,
        *,
        doc_id: str,
        content_hash: str,
        tenant: str,
        language: str,
        tags: tuple[str, ...] = (),
    ) -> list[Chunk]:
        """Chunks with stable ids: the same content always gives the same ids."""
        chunks = []
        for n, plan in enumerate(self.plan(doc)):
            key = f"{tenant}\x00{doc_id}\x00{content_hash}\x00{n}".encode()
            chunks.append(
                Chunk(
                    id=hashlib.sha256(key).hexdigest()[:32],
                    doc_id=doc_id,
                    ordinal=n,
                    text=plan.text,
                    title=doc.title,
                    heading=plan.heading,
                    page=plan.page,
                    tenant=tenant,
                    language=language,
                    tags=tags,
                )
            )
        return chunks
