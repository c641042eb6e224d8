"""The WebSocket: one connection carries chat turns (with conversation ids) and ingestion progress.

Client → server (JSON): ``{"type": "ask", "id", "question", "conversation_id"?, "k"?, "filters"?}``,
``{"type": "subscribe", "job_id"}``. Server → client: the answer's events as ``interfaces/wire.py`` encodes them
(``sources``, ``token``…, ``usage``, ``done`` or ``error``), each with the turn's ``id``; and ``progress`` (with
``job_id``). Browsers cannot set headers on a WebSocket, so the credential may come as ``?token=…``. A client
that disconnects mid-answer stops the generation.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ragline.errors import InputError, RaglineError, validation_message
from ragline.interfaces.requests import QueryRequest
from ragline.interfaces.wire import error_json, event_json

if TYPE_CHECKING:
    from ragline.interfaces.http.app import Service

def add_websocket(app: FastAPI, service: Service) -> None:
    """Mount ``/v1/ws`` on the app."""

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
                    await asyncio.to_thread(_answer, service, tenant, message, outbox, loop, stop)
                else:
                    await outbox.put(error_json(InputError(f"unknown message type {kind!r}; use 'ask' or "
                                                           "'subscribe'")))
        except WebSocketDisconnect:
            pass
        finally:
            stop.set()
            service.jobs.listeners.remove(on_progress)
            sender.cancel()


async def _send_all(ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        await ws.send_json(await outbox.get())


def _answer(service: Service, tenant: str, message: dict[str, Any], outbox: asyncio.Queue[dict[str, Any]],
            loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    """Run one turn in a worker thread, posting its events; a closed socket stops the model."""
    turn = message.get("id")

    def post(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, {"id": turn, **event})

    try:
        request = QueryRequest(question=str(message.get("question") or ""), k=message.get("k"),
                               filters=message.get("filters") or {})
    except ValueError as err:  # pydantic validation of the message
        post(error_json(InputError(f"malformed message: {validation_message(err)}")))
        return
    events = service.counted(service.turns.answer(
        tenant, request, model=str(message.get("model") or "ragline"),
        conversation=str(message.get("conversation_id") or "")))
    try:
        for event in events:
            if stop.is_set():
                return
            post(event_json(event))
    finally:
        events.close()
