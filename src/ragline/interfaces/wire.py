"""The one wire encoding of answer events: a JSON object per event, with its ``type``.

Server-Sent Events, the local WebSocket, the API Gateway WebSocket and the Lambda handlers all send exactly
these objects (the WebSockets add the turn's ``id``); the OpenAI-compatible endpoint translates the same events
into its own chunks (``http/openai.py``). In stream order:

=========  =========================================================================================
type       fields
=========  =========================================================================================
prompt     ``messages``: ``[{role, content}]`` (only when the question asked for it)
sources    ``sources``: the numbered sources the answer may cite
token      ``text``: a piece of the answer
verdict    ``index``, ``text``, ``verdict`` (supported, unsupported, uncited, remark), ``sources``, ``reason``,
           ``shown``: one sentence checked against its cited sources, sent as soon as the sentence is complete
usage      ``prompt_tokens``, ``completion_tokens``
done       ``answer``: the whole checked answer (text, citations, sources, ``sentences`` (the verdicts),
           ``supported`` (their share), timings, partial, cache, ...)
error      ``error`` (the error's kind, e.g. ``InputError``) and ``message``: ends the stream
=========  =========================================================================================
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from ragline.errors import RaglineError
from ragline.types import Done, ErrorEvent, Event, PromptEvent, Sources, Token, UsageEvent, Verdict


def event_json(event: Event) -> dict[str, Any]:  # noqa: PLR0911 - one return per event type
    """The JSON object of one event."""
    if isinstance(event, Token):
        return {"type": "token", "text": event.text}
    if isinstance(event, Verdict):
        return {"type": "verdict", **event.as_dict()}
    if isinstance(event, Sources):
        return {"type": "sources", "sources": [s.as_dict() for s in event.sources]}
    if isinstance(event, UsageEvent):
        return {"type": "usage", "prompt_tokens": event.usage.prompt_tokens,
                "completion_tokens": event.usage.completion_tokens}
    if isinstance(event, Done):
        return {"type": "done", "answer": event.answer.as_dict()}
    if isinstance(event, PromptEvent):
        return {"type": "prompt", "messages": [{"role": m.role, "content": m.content} for m in event.messages]}
    return error_json(event)


def error_json(error: ErrorEvent | RaglineError) -> dict[str, Any]:
    """The ``error`` object, from the stream's ErrorEvent or from an error raised before the stream began."""
    if isinstance(error, ErrorEvent):
        return {"type": "error", "error": error.kind, "message": error.message}
    return {"type": "error", "error": type(error).__name__, "message": str(error)}


def sse(data: dict[str, Any]) -> str:
    """One Server-Sent Event: the ``event`` line is the object's type."""
    return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_stream(events: Generator[Event, None, None]) -> Generator[str, None, None]:
    """The events as Server-Sent Events; closing this closes the events (a client that left stops the model)."""
    try:
        for event in events:
            yield sse(event_json(event))
    finally:
        events.close()
