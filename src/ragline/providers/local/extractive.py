"""The extractive answerer: no language model; picks the source sentences closest to the question and cites them.

Deterministic: the same sources and question always give the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence

from ragline.seams import Embedder
from ragline.types import Deadline, Query, ResponseEvent, Source, Sources, Token

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n{2,}|\n(?=[-*#|] )")
NO_ANSWER = "I don't know: the sources do not answer this question."


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of a text, without Markdown heading marks or tiny fragments."""
    parts = (re.sub(r"^[#>*\-\s]+", "", p).strip() for p in _SENTENCE.split(text))
    return [" ".join(p.split()) for p in parts if len(p.split()) >= 4]


class ExtractiveAnswerer:
    """A Responder: up to ``max_sentences`` sentences from the sources, each followed by its ``[n]``."""

    name = "extractive"
    accepts_images = False
    retrieves = False

    def __init__(self, embedder: Embedder, max_sentences: int = 3, min_similarity: float = 0.3) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_similarity = min_similarity

    def describe(self) -> str:
        """Nothing to reach: it needs no model beyond the embedder."""
        return "needs no model"

    def close(self) -> None:
        """Nothing to free."""

    def respond(self, query: Query, sources: Sequence[Source], *, tenant: str,
                deadline: Deadline | None) -> Generator[ResponseEvent, None, None]:
        """The sources, then the chosen sentences as tokens."""
        yield Sources(list(sources))
        yield from self._answer(query.question, sources)

    def _answer(self, question: str, sources: Sequence[Source]) -> Generator[Token, None, None]:
        candidates = [(s.number, sent) for s in sources for sent in split_sentences(s.excerpt)]
        if not candidates:
            yield Token(NO_ANSWER)
            return
        vectors = self.embedder.embed_batch([question, *(sent for _, sent in candidates)])
        similarity = vectors[1:] @ vectors[0]
        # Stable order: by similarity, then by source rank and position, so ties never flip.
        order = sorted(range(len(candidates)), key=lambda i: (-round(float(similarity[i]), 6), i))
        chosen = [i for i in order[: self.max_sentences] if similarity[i] >= self.min_similarity]
        if not chosen:
            yield Token(NO_ANSWER)
            return
        for n, i in enumerate(sorted(chosen)):
            number, sentence = candidates[i]
            yield Token(("" if n == 0 else " ") + f"{sentence} [{number}]")
