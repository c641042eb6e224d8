"""The one exception tree of ragline; every error carries a message meant for the user.

RaglineError
├── ConfigError            settings that cannot work (unknown provider or model name, bad path)
├── ParseError             one source could not be turned into text (corrupt, encrypted, scanned, empty)
│   └── UnsupportedTypeError
├── StoreError             the vector store failed or refused (for example another embedder's index)
├── ModelError             a chat or embedding model failed
│   └── ModelUnavailableError  the endpoint could not be reached, throttled, or timed out
├── NotFoundError          a document or resource the caller asked for does not exist (for this tenant)
├── AuthError              missing, expired, forged or wrong-audience credentials
│   └── RateLimitedError   too many failed authentications from one address
└── InputError             a request that cannot be served as given (empty or oversized question)
    └── TooLargeError      an upload over the size limit
"""

from __future__ import annotations

from typing import Any


class RaglineError(Exception):
    """Base of every error ragline raises on purpose; ``str(err)`` is what the user sees."""

    exit_code = 1


class ConfigError(RaglineError):
    """The settings name something that does not exist or cannot work."""

    exit_code = 2


class ParseError(RaglineError):
    """A source could not be turned into text."""


class UnsupportedTypeError(ParseError):
    """No parser handles this kind of file."""


class StoreError(RaglineError):
    """The store failed or refused the operation."""


class ModelError(RaglineError):
    """A model call failed."""


class ModelUnavailableError(ModelError):
    """A model endpoint could not be reached, was throttled, or timed out."""


class NotFoundError(RaglineError):
    """The named thing does not exist for this caller."""

    exit_code = 3


class AuthError(RaglineError):
    """The caller could not be identified."""

    exit_code = 4


class DeliveryError(RaglineError):
    """An answer's event could not be delivered to the client (a WebSocket post that failed for good)."""


class InputError(RaglineError):
    """The request cannot be served as given."""

    exit_code = 2


class TooLargeError(InputError):
    """An upload or file over the configured size limit."""


class RateLimitedError(AuthError):
    """Too many failed authentications from one address: refused for a while without checking."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def validation_message(err: Any) -> str:
    """A pydantic ValidationError (or its list of problems) as one line: ``field: problem; field: problem``.

    The input is named by its place, never echoed (NaN, Infinity and lone surrogates cannot be written as JSON).
    """
    problems = err if isinstance(err, list) else err.errors()
    clauses = []
    for problem in problems:
        where = ".".join(str(part) for part in problem.get("loc", ()))
        clauses.append(f"{where}: {problem.get('msg', 'invalid')}".encode("utf-8", "backslashreplace").decode())
    return "; ".join(clauses) or "the request is not valid"


def choices_message(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Say that ``name`` is not a known ``kind`` and list the valid ones."""
    return f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}"


def error_by_name(kind: str, message: str) -> RaglineError:
    """The error an ``ErrorEvent`` names, rebuilt (its class keeps its HTTP status and exit code)."""
    pending: list[type[RaglineError]] = [RaglineError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == kind:
            return cls(message)
        pending.extend(cls.__subclasses__())
    return RaglineError(message)
