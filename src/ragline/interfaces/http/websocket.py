"""The WebSocket: one connection carries chat turns (with conversation ids) and ingestion progress.

Client → server (JSON): ``{"type": "ask", "id", "question", "conversation_id"?, "k"?, "filters"?}``,
``{"type": "subscribe", "job_id"}``. Server → client: ``sources``, ``token``, ``done``, ``error`` (each with the
turn's ``id``) and ``progress`` (with ``job_id``). Browsers cannot set headers on a WebSocket, so the credential
may come as ``?token=…``. A client that disconnects mid-answer stops the generation.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ragline.errors import RaglineError
from ragline.types import Done, Message, Sources, Token

if TYPE_CHECKING:
    from ragline.interfaces.http.app import Service

MAX_TURNS = 8  # history kept per conversation (user + assistant messages)


class Conversations:
    """Recent turns per (tenant, conversation id), bounded in count."""

    def __init__(self, size: int = 1000) -> None:
        self._items: OrderedDict[tuple[str, str], list[Message]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def history(self, tenant: str, conversation: str) -> tuple[Message, ...]:
        """The turns so far."""
        with self._lock:
            return tuple(self._items.get((tenant, conversation), ()))

    def add(self, tenant: str, conversation: str, question: str, answer: str) -> None:
        """Append a turn."""
        with self._lock:
            turns = self._items.setdefault((tenant, conversation), [])
            turns += [Message("user", question), Message("assistant", answer)]
            del turns[:-MAX_TURNS]
            self._items.move_to_end((tenant, conversation))
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def add_websocket(app: FastAPI, service: Service) -> None:
    """Mount ``/v1/ws`` on the app."""
    conversations = Conversations()

    @app.websocket("/v1/ws")
    async def socket(ws: WebSocket) -> None:
        try:
            tenant = service.auth.tenant(ws.headers.get("authorization"), ws.query_params.get("token"))
        except RaglineError as err:
            await ws.close(code=4401, reason=str(err)[:120])
            return
        await ws.accept()
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        watched: set[str] = set()
        stop = threading.Event()

        def on_progress(job_tenant: str, job_id: str, event: dict[str, Any]) -> None:
            if job_tenant == tenant and job_id in watched:
                loop.call_soon_threadsafe(outbox.put_nowait, {"type": "progress", "job_id": job_id, **event})

        service.jobs.listeners.append(on_progress)
        sender = asyncio.create_task(_send_all(ws, outbox))
        try:
            while True:
                message = await ws.receive_json()
                kind = message.get("type")
                if kind == "subscribe":
                    watched.add(str(message.get("job_id")))
                elif kind == "ask":
                    await asyncio.to_thread(_answer, service, conversations, tenant, message, outbox, loop, stop)
                else:
                    await outbox.put({"type": "error", "message": f"unknown message type {kind!r}; "
                                      "use 'ask' or 'subscribe'"})
        except WebSocketDisconnect:
            pass
        finally:
            stop.set()
            service.jobs.listeners.remove(on_progress)
            sender.cancel()


async def _send_all(ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await ws.send_json(await outbox.get())


def _answer(service: Service, conversations: Conversations, tenant: str, message: dict[str, Any],
            outbox: asyncio.Queue[dict[str, Any]], loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    """Run one turn in a worker thread, posting its events; a closed socket stops the model."""
    from ragline.interfaces.http.app import QueryRequest

    turn = message.get("id")
    conversation = str(message.get("conversation_id") or "")

    def post(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, {"id": turn, **event})

    try:
        body = QueryRequest(question=str(message.get("question") or ""), k=message.get("k"),
                            filters=message.get("filters") or {})
        history = conversations.history(tenant, conversation) if conversation else ()
        engine = service.engine(str(message.get("model") or "ragline"), tenant)
        query = service.query(body, history)
        events = engine.stream(query)
        for event in events:
            if stop.is_set():
                events.close()
                return
            if isinstance(event, Sources):
                post({"type": "sources", "sources": [s.as_dict() for s in event.sources]})
            elif isinstance(event, Token):
                post({"type": "token", "text": event.text})
            elif isinstance(event, Done):
                service.done(event.answer)
                if conversation:
                    conversations.add(tenant, conversation, body.question, event.answer.text)
                post({"type": "done", "answer": event.answer.as_dict()})
    except RaglineError as err:
        post({"type": "error", "message": str(err), "error": type(err).__name__})
    except ValueError as err:  # pydantic validation of the message
        post({"type": "error", "message": f"malformed message: {err}", "error": "InputError"})
