"""Translate engine events to wire formats: Server-Sent Events and OpenAI chat-completion chunks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from typing import Any

from ragline.errors import RaglineError
from ragline.types import Answer, Done, Event, Sources, Token


def sse(event: str, data: dict[str, Any]) -> str:
    """One Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_stream(events: Generator[Event, None, None], on_done: Any = None) -> Generator[str, None, None]:
    """Events in order (sources, tokens, usage, done); a failure after the stream began is an ``error`` event."""
    try:
        for event in events:
            if isinstance(event, Sources):
                yield sse("sources", {"sources": [s.as_dict() for s in event.sources]})
            elif isinstance(event, Token):
                yield sse("token", {"text": event.text})
            elif isinstance(event, Done):
                if on_done is not None:
                    on_done(event.answer)
                yield sse("usage", {"prompt_tokens": event.answer.usage.prompt_tokens,
                                    "completion_tokens": event.answer.usage.completion_tokens})
                yield sse("done", event.answer.as_dict())
    except RaglineError as err:
        yield sse("error", {"message": str(err), "type": type(err).__name__})
    finally:
        events.close()  # a client that left stops the engine (and the model) now


def _extras(answer: Answer) -> dict[str, Any]:
    """What ragline adds to OpenAI's shapes: the sources the [n] markers resolve to, and its metadata."""
    data = answer.as_dict()
    return {key: data[key] for key in ("sources", "citations", "invalid_citations", "partial", "partial_reason",
                                       "cache", "timings_ms")}


def completion(answer: Answer, model: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": "length" if answer.partial else "stop",
        }],
        "usage": {
            "prompt_tokens": answer.usage.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens,
            "total_tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
        },
        **_extras(answer),
    }


def completion_chunks(
    events: Generator[Event, None, None], model: str, on_done: Any = None
) -> Generator[str, None, None]:
    """``chat.completion.chunk`` events over SSE, ending with ``data: [DONE]``."""
    ident = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        for event in events:
            if isinstance(event, Token):
                yield chunk({"content": event.text})
            elif isinstance(event, Done):
                if on_done is not None:
                    on_done(event.answer)
                yield chunk({}, "length" if event.answer.partial else "stop", **_extras(event.answer))
    except RaglineError as err:
        yield f"data: {json.dumps({'error': {'message': str(err), 'type': type(err).__name__}})}\n\n"
    finally:
        events.close()
    yield "data: [DONE]\n\n"
