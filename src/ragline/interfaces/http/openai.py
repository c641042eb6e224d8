"""The OpenAI-compatible translation of answer events: ``chat.completion`` and ``chat.completion.chunk``.

ragline's extras (the sources the ``[n]`` markers resolve to, citations, each sentence's verdict, the supported
share, partial, cache, timings) travel as extra fields, which standard clients ignore: a streamed sentence's
verdict is a chunk with an empty ``delta`` and a ``verdict`` field, as soon as the sentence is complete. A failure
after the stream began is OpenAI's ``{"error": ...}`` chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from typing import Any

from ragline.types import Answer, Done, ErrorEvent, Event, Token, Verdict


def _extras(answer: Answer) -> dict[str, Any]:
    data = answer.as_dict()
    return {key: data[key] for key in ("sources", "citations", "invalid_citations", "sentences", "supported",
                                       "refused", "partial", "partial_reason", "cache", "timings_ms")}


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


def completion_chunks(events: Generator[Event, None, None], model: str) -> Generator[str, None, None]:
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
            elif isinstance(event, Verdict):
                yield chunk({}, verdict=event.as_dict())
            elif isinstance(event, Done):
                yield chunk({}, "length" if event.answer.partial else "stop", **_extras(event.answer))
            elif isinstance(event, ErrorEvent):
                yield f"data: {json.dumps({'error': {'message': event.message, 'type': event.kind}})}\n\n"
    finally:
        events.close()
    yield "data: [DONE]\n\n"
