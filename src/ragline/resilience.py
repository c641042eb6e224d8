"""Resilience around every chat model: deadline, retries with exponential backoff and full jitter, failover.

Only faults that can pass are retried (throttling, 429/5xx, connection failures, timeouts), and only before the
first token reached the caller: a stream that already produced text is never silently restarted. The deadline
bounds everything, including the waits between attempts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ragline.errors import ModelError, ModelUnavailableError
from ragline.types import ChatModel, Deadline, Message, ModelEvent, Token

if TYPE_CHECKING:
    from ragline.settings import Settings


class DeadlineExceededError(ModelUnavailableError):
    """The caller's deadline passed before the model finished."""


class StreamInterruptedError(ModelUnavailableError):
    """The model failed after some of the answer had been streamed; the text so far stands as a partial answer."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts per model, and how long to wait between them (full jitter)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy ``RAGLINE_RETRY_*`` describe."""
        return cls(settings.retry_attempts, settings.retry_base_delay, settings.retry_max_delay)

    def delay(self, retry: int, rng: random.Random) -> float:
        """Wait before retry number ``retry`` (1-based): uniform in [0, min(max_delay, base * 2**(retry-1))]."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one model, as the answer's metadata reports it."""

    model: str
    outcome: str  # "ok", or the error message
    waited: float = 0.0


@dataclass(slots=True)
class ResilientChatModel:
    """A ChatModel that tries a chain of models with retries; it records every attempt."""

    chain: Sequence[ChatModel]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    attempts: list[Attempt] = field(default_factory=list)

    def for_call(self) -> ResilientChatModel:
        """A copy sharing the models but with its own attempt log, so concurrent answers do not mix logs."""
        return ResilientChatModel(self.chain, self.policy, self.sleep, self.rng)

    @property
    def name(self) -> str:
        """The first model's name (the one normally answering)."""
        return self.chain[0].name

    @property
    def accepts_images(self) -> bool:
        """True when every model of the chain takes images (a failover must be able to answer too)."""
        return all(getattr(m, "accepts_images", False) for m in self.chain)

    @property
    def context_tokens(self) -> int:
        """The smallest context of the chain, so the prompt fits whichever model answers."""
        return min(m.context_tokens for m in self.chain)

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Iterator[ModelEvent]:
        """Stream from the first model that answers; raise the last error if none does."""
        self.attempts = []
        last: ModelError | None = None
        for model in self.chain:
            waited = 0.0
            for attempt in range(1, self.policy.max_attempts + 1):
                if deadline is not None and deadline.expired():
                    raise DeadlineExceededError("the deadline passed before the model answered") from last
                streamed = False
                try:
                    for event in model.stream(messages, max_tokens=max_tokens, deadline=deadline):
                        streamed = streamed or isinstance(event, Token)
                        yield event
                except ModelUnavailableError as err:
                    self.attempts.append(Attempt(model.name, str(err), waited))
                    if streamed:
                        raise StreamInterruptedError(f"{model.name} failed mid-answer: {err}") from err
                    last = err
                    if attempt == self.policy.max_attempts:
                        break
                    waited = self.policy.delay(attempt, self.rng)
                    if deadline is not None and waited >= deadline.remaining():
                        raise DeadlineExceededError(
                            f"the deadline leaves no time to retry after: {err}"
                        ) from err
                    self.sleep(waited)
                except ModelError as err:  # permanent for this model (bad request, auth): next in the chain
                    self.attempts.append(Attempt(model.name, str(err), waited))
                    last = err
                    break
                else:
                    self.attempts.append(Attempt(model.name, "ok", waited))
                    return
        raise last if last is not None else ModelError("no chat model is configured")

