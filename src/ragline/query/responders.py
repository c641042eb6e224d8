"""The prompted responder: a chat model answering from a numbered-sources prompt (``prompts.py``).

Its siblings behind the Responder seam are the extractive answerer (``providers/local/extractive.py``) and a
knowledge base's RetrieveAndGenerate (``providers/aws/knowledge_base.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

from ragline.query.prompts import build_messages
from ragline.seams import ChatModel
from ragline.types import Deadline, Message, PromptEvent, Query, ResponseEvent, Source, Sources


class PromptedResponder:
    """Puts the sources that fit the model's context into the prompt, then streams the model's reply."""

    retrieves = False

    def __init__(self, model: ChatModel, count_tokens: Callable[[str], int]) -> None:
        self.model = model
        self.count_tokens = count_tokens

    @property
    def name(self) -> str:
        """The chat model's name."""
        return self.model.name

    @property
    def accepts_images(self) -> bool:
        """Whether the chat model (every model of its failover chain) takes images."""
        return self.model.accepts_images

    def describe(self) -> str:
        """The chat model's own check."""
        return self.model.describe()

    def close(self) -> None:
        """Close the chat model (and its failover chain)."""
        self.model.close()

    def messages(self, query: Query, sources: Sequence[Source]) -> tuple[list[Message], list[Source]]:
        """The messages sent to the model, and the sources that fit in them (best first)."""
        budget = int((self.model.context_tokens - query.max_tokens) * 0.9)
        messages, used = build_messages(
            query.question, sources, [s.excerpt for s in sources], history=query.history,
            budget_tokens=budget, count_tokens=self.count_tokens,
        )
        if query.images:
            messages[-1] = Message("user", messages[-1].content, tuple(query.images))
        return messages, used

    def respond(self, query: Query, sources: Sequence[Source], *, tenant: str,
                deadline: Deadline | None) -> Generator[ResponseEvent, None, None]:
        """The prompt (when asked), the sources it holds, then the model's events."""
        messages, used = self.messages(query, sources)
        if query.show_prompt:
            yield PromptEvent(tuple(messages))
        yield Sources(used)
        yield from self.model.stream(messages, max_tokens=query.max_tokens, deadline=deadline)
