"""Resilience, written once: retries with exponential backoff and full jitter, within a deadline; failover.

``RetryPolicy.run`` is the one retry loop of every remote call (OpenSearch, DynamoDB batch writes, Titan, Kendra,
knowledge bases); ``ResilientChatModel`` applies the same policy to streaming chat models and fails over along a
chain. Only faults that can pass are retried (throttling, 429/5xx, connection failures, timeouts), and a stream
is retried only before its first token reached the caller: text already streamed is never silently restarted.
The deadline bounds everything, including the waits between attempts.

One deadline per request reaches every remote call: the engine runs each stage ``within(deadline)``, and every
client builds its read timeout with ``read_timeout`` (its own timeout, cut to what is left), so no call can
outlive the answer's deadline, which on Lambda is derived from the function's remaining time.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ragline.errors import ModelError, ModelUnavailableError
from ragline.types import Attempt, Deadline, Message, ModelEvent, Token

if TYPE_CHECKING:
    from ragline.seams import ChatModel
    from ragline.settings import Settings

T = TypeVar("T")


_STAGE_DEADLINE: ContextVar[Deadline | None] = ContextVar("ragline_stage_deadline", default=None)


@contextmanager
def within(deadline: Deadline | None) -> Iterator[None]:
    """Run a synchronous stage under ``deadline``: the remote calls it makes read it (never across a ``yield``)."""
    token = _STAGE_DEADLINE.set(deadline)
    try:
        yield
    finally:
        _STAGE_DEADLINE.reset(token)


def current_deadline(deadline: Deadline | None = None) -> Deadline | None:
    """``deadline``, or else the deadline of the stage running now (None: no deadline)."""
    return deadline if deadline is not None else _STAGE_DEADLINE.get()


def read_timeout(timeout: float, deadline: Deadline | None = None) -> float:
    """``timeout`` cut to what is left of the deadline: at least 1 s, rounded up to half seconds (few clients)."""
    deadline = current_deadline(deadline)
    if deadline is None:
        return timeout
    return max(1.0, math.ceil(min(timeout, deadline.remaining()) * 2) / 2)


class DeadlineExceededError(ModelUnavailableError):
    """The caller's deadline passed before the model finished."""


class StreamInterruptedError(ModelUnavailableError):
    """The model failed after some of the answer had been streamed; the text so far stands as a partial answer."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts per call, and how long to wait between them (full jitter)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy ``RAGLINE_RETRY_*`` describe."""
        return cls(settings.retry_attempts, settings.retry_base_delay, settings.retry_max_delay)

    def delay(self, retry: int) -> float:
        """Wait before retry number ``retry`` (1-based): uniform in [0, min(max_delay, base * 2**(retry-1))]."""
        return self.rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (retry - 1)))

    def wait_or_raise(self, err: Exception, attempt: int, deadline: Deadline | None, transient: bool) -> float:
        """After failed attempt ``attempt``: sleep (and return the wait) when another may pass in time; else raise."""
        if not transient or attempt >= self.max_attempts:
            raise err
        wait = self.delay(attempt)
        if deadline is not None and wait >= deadline.remaining():
            raise DeadlineExceededError(f"the deadline leaves no time to retry after: {err}") from err
        self.sleep(wait)
        return wait

    def run(self, call: Callable[[], T], *, transient: Callable[[Exception], bool],
            deadline: Deadline | None = None) -> T:
        """``call()`` until it returns; errors ``transient`` accepts are retried, any other is raised at once.

        Without a ``deadline``, the current stage's bounds the waits.
        """
        deadline = current_deadline(deadline)
        attempt = 1
        while True:
            try:
                return call()
            except Exception as err:
                self.wait_or_raise(err, attempt, deadline, transient(err))
            attempt += 1


def unavailable(err: Exception) -> bool:
    """The usual ``transient`` test: the provider mapped the fault to ModelUnavailableError."""
    return isinstance(err, ModelUnavailableError)


@dataclass(slots=True)
class ResilientChatModel:
    """A ChatModel that tries a chain of models with retries, yielding an ``Attempt`` event for every call."""

    chain: Sequence[ChatModel]
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def name(self) -> str:
        """The first model's name (the one normally answering)."""
        return self.chain[0].name

    @property
    def accepts_images(self) -> bool:
        """True when every model of the chain takes images (a failover must be able to answer too)."""
        return all(m.accepts_images for m in self.chain)

    @property
    def context_tokens(self) -> int:
        """The smallest context of the chain, so the prompt fits whichever model answers."""
        return min(m.context_tokens for m in self.chain)

    def describe(self) -> str:
        """The first model's check, and the failover chain behind it."""
        behind = f"; then {', '.join(m.name for m in self.chain[1:])}" if len(self.chain) > 1 else ""
        return self.chain[0].describe() + behind

    def close(self) -> None:
        """Close every model of the chain."""
        for model in self.chain:
            model.close()

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Stream from the first model that answers; raise the last error if none does."""
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
                    yield Attempt(model.name, str(err), waited)
                    if streamed:
                        raise StreamInterruptedError(f"{model.name} failed mid-answer: {err}") from err
                    last = err
                    if attempt == self.policy.max_attempts:
                        break
                    waited = self.policy.wait_or_raise(err, attempt, deadline, transient=True)
                except ModelError as err:  # permanent for this model (bad request, auth): next in the chain
                    yield Attempt(model.name, str(err), waited)
                    last = err
                    break
                else:
                    yield Attempt(model.name, "ok", waited)
                    return
        raise last if last is not None else ModelError("no chat model is configured")
