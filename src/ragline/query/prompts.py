"""Prompt templates: explicit, versioned, and visible with ``ragline ask --show-prompt``.

A change to any template's wording, or to how the extractive answerer shapes its answers, bumps
``PROMPT_VERSION`` (it is part of the answer-cache key).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ragline.types import Message, Source

PROMPT_VERSION = "stuff-v4"

SYSTEM = (
    "You answer questions using only the numbered sources provided. "
    "After each sentence, write the number of the source it comes from in square brackets, like [1]. "
    "If the sources do not contain the answer, say that you don't know. Be concise."
)

SOURCE = "[{number}] {title}{location}\n{text}"

USER = "Sources:\n\n{sources}\n\nQuestion: {question}\n\nAnswer in one to three sentences, citing sources like [1]:"

# Markdown links and images keep only their text in the prompt: small models copy URLs instead of answering.
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def render_source(source: Source, text: str) -> str:
    """One numbered source block."""
    location = f" ({source.location})" if source.location else ""
    title = source.title or source.doc_id
    return SOURCE.format(number=source.number, title=title, location=location, text=_LINK.sub(r"\1", text))


def build_messages(
    question: str,
    sources: Sequence[Source],
    texts: Sequence[str],
    *,
    history: Sequence[Message] = (),
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> tuple[list[Message], list[Source]]:
    """The "stuff" prompt: every source that fits the token budget, best first; returns the sources used."""
    fixed = count_tokens(SYSTEM) + count_tokens(USER.format(sources="", question=question))
    fixed += sum(count_tokens(m.content) + 4 for m in history)
    remaining = budget_tokens - fixed
    blocks: list[str] = []
    used: list[Source] = []
    for source, text in zip(sources, texts, strict=True):
        block = render_source(source, text)
        cost = count_tokens(block) + 2
        if cost > remaining:
            if used:
                break
            # The best source alone is too long: keep its beginning rather than answer from nothing.
            block = block[: max(200, remaining * 3)]
            cost = remaining
        blocks.append(block)
        used.append(source)
        remaining -= cost
    user = USER.format(sources="\n\n".join(blocks), question=question)
    return [Message("system", SYSTEM), *history, Message("user", user)], used
