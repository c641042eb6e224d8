"""The WebSocket: one connection carries chat turns (with conversation ids) and ingestion progress.

Client → server (JSON): ``{"type": "ask", "id", "question", "conversation_id"?, "k"?, "filters"?}``,
``{"type": "subscribe", "job_id"}``. Server → client: the answer's events as ``interfaces/wire.py`` encodes them
(``sources``, ``token``…, ``usage``, ``done`` or ``error``), each with the turn's ``id``; and ``progress`` (with
``job_id``). Browsers cannot set headers on a WebSocket, so the credential may come as ``?token=…``; a bad one
is refused at the handshake with HTTP 401 and the error body. The credential is checked again every
``ws_recheck_seconds`` for as long as the socket is open: a revoked key or an expired token closes it with code
4401 and the reason. A frame that is not a JSON object gets an error event, and the connection stays. A client
that disconnects mid-answer stops the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ragline.errors import InputError, RaglineError, validation_message
from ragline.interfaces.http.contract import error_response
from ragline.interfaces.requests import QueryRequest
from ragline.interfaces.wire import error_json, event_json
from ragline.seams import Identity

if TYPE_CHECKING:
    from ragline.interfaces.http.app import Service

def add_websocket(app: FastAPI, service: Service) -> None:
    """Mount ``/v1/ws`` on the app."""

    @app.websocket("/v1/ws")
    async def socket(ws: WebSocket) -> None:
        client = ws.client.host if ws.client else ""
        try:
            identity = await asyncio.to_thread(service.auth.identify, ws.headers.get("authorization"),
                                               ws.query_params.get("token"), client)
        except RaglineError as err:  # an HTTP 401 (429) at the handshake, with the documented error body
            await ws.send_denial_response(error_response(err))
            return
        tenant = identity.tenant
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
        guard = asyncio.create_task(_keep_checking(ws, service, identity, stop))
        try:
            while True:
                message = await _receive_object(ws, outbox)
                if message is None:
                    continue  # not a JSON object: answered with an error event, the connection stays
                kind = message.get("type")
                if kind == "ping" or message.get("action") == "ping":
                    continue  # a keep-alive (the page sends them on API Gateway; harmless here)
                if kind == "subscribe":
                    watched.add(str(message.get("job_id")))
                elif kind == "ask":
                    await asyncio.to_thread(_answer, service, tenant, message, outbox, loop, stop)
                else:
                    await outbox.put(error_json(InputError(f"unknown message type {kind!r}; use 'ask' or "
                                                           "'subscribe'")))
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: the guard closed the socket under us
            pass
        finally:
            stop.set()
            service.jobs.listeners.remove(on_progress)
            sender.cancel()
            guard.cancel()


async def _receive_object(ws: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> dict[str, Any] | None:
    """The next frame as a JSON object; anything else is answered with an error event (None)."""
    frame = await ws.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    text = frame.get("text")
    if text is None:
        problem = "send text frames of JSON, not binary"
    else:
        try:
            message = json.loads(text)
        except ValueError:
            problem = "the frame is not JSON"
        else:
            if isinstance(message, dict):
                return message
            problem = 'send one JSON object per frame, like {"type": "ask", "question": "..."}'
    await outbox.put(error_json(InputError(f"malformed message: {problem}")))
    return None


async def _keep_checking(ws: WebSocket, service: Service, identity: Identity, stop: threading.Event) -> None:
    """Close the socket (4401, with the reason) once its credential no longer holds: revoked, or expired."""
    every = service.settings.ws_recheck_seconds
    while True:
        await asyncio.sleep(max(0.05, min(every, identity.expires_at - time.time())))
        try:
            await asyncio.to_thread(service.auth.recheck, identity)
        except RaglineError as err:
            stop.set()  # an answer in progress stops too
            with contextlib.suppress(Exception):
                await ws.send_json(error_json(err))
                await ws.close(code=4401, reason=str(err)[:120])
            return


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
