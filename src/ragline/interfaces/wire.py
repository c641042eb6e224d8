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

Where a transport bounds its messages (API Gateway WebSockets: 128 KB), ``frames`` cuts an object to fit, the same
way for every such transport: a long ``token`` becomes several; ``sources`` and ``done`` trim their excerpts
(``"trimmed": true``); a ``done`` that still does not fit omits what the stream already carried (the answer's
text, its sentences, then its sources), named in ``answer.omitted``; a ``verdict`` or ``prompt`` trims its text.
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


def size(data: dict[str, Any]) -> int:
    """Bytes of the object's JSON as the transports send it."""
    return len(json.dumps(data, ensure_ascii=False).encode())


def frames(data: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The object as wire objects of at most ``limit`` bytes of JSON each (see the module's docstring)."""
    if size(data) <= limit:
        return [data]
    kind = data.get("type")
    if kind == "token" and len(data["text"]) > 1:
        half = len(data["text"]) // 2
        return [*frames({**data, "text": data["text"][:half]}, limit),
                *frames({**data, "text": data["text"][half:]}, limit)]
    for cut in (_trim_excerpts(data, n) for n in (1000, 200, 0)):
        if size(cut) <= limit:
            return [cut]
    if kind == "done":
        answer, omitted = dict(_trim_excerpts(data, 0)["answer"]), []
        for key, empty in (("answer", None), ("sentences", []), ("citations", []), ("sources", [])):
            answer[key] = empty
            omitted.append(key)
            if size(fitted := {**data, "answer": {**answer, "omitted": omitted}}) <= limit:
                return [fitted]
    if kind == "prompt":  # each message's content cut to an equal share, in characters of up to 4 bytes
        share = max(0, limit - size({**data, "messages": []}) - 64 * len(data["messages"])) // (
            4 * max(1, len(data["messages"])))
        return [{**data, "messages": [{**m, "content": m["content"][:share]} for m in data["messages"]],
                 "trimmed": True}]
    if kind in ("verdict", "error"):
        key = "text" if kind == "verdict" else "message"
        keep = max(0, limit - size({**data, key: "", "trimmed": True}) - 8) // 4
        return [{**data, key: data[key][:keep] + "…", "trimmed": True}]
    raise ValueError(f"a {kind} event cannot be cut to {limit} bytes")


def _trim_excerpts(data: dict[str, Any], keep: int) -> dict[str, Any]:
    """``sources`` (or ``done``'s answer) with each excerpt cut to ``keep`` characters."""
    def cut(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "excerpt": s["excerpt"][:keep]} if len(s.get("excerpt") or "") > keep else s
                for s in sources]

    if data.get("type") == "sources":
        return {**data, "sources": cut(data["sources"]), "trimmed": True}
    if data.get("type") == "done":
        return {**data, "answer": {**data["answer"], "sources": cut(data["answer"]["sources"])}, "trimmed": True}
    return data


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
