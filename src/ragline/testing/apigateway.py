"""A loopback stand-in for an API Gateway WebSocket API, its Management API and Lambda's Invoke API, for tests.

A WebSocket client (a browser, the ``websockets`` library) connects to ``ws://127.0.0.1:PORT/STAGE``; the handler
(``interfaces/aws/handlers.websocket``) is invoked with the event shapes API Gateway sends (``$connect`` with the
headers and query string, ``MESSAGE`` events per route, ``$disconnect``) and a Lambda context; it answers through the
Management API (``http://127.0.0.1:PORT/STAGE/@connections/ID``) with the real boto3 client, and may invoke itself
asynchronously through Lambda's Invoke API on the same port. The documented limits are enforced:

* **integration timeout, 29 s**: a route whose synchronous invocation has not returned by then is answered to the
  client with API Gateway's ``{"message": "Endpoint request timed out", ...}``; the function runs on, as on AWS.
* **message payload, 128 KB**: a client message over it closes the connection with 1009; a ``PostToConnection``
  over it is refused with 413 ``PayloadTooLargeException``.
* **idle timeout, 10 minutes** (no message from the client; the strict reading, since posts from the server are
  not documented to count) and **connection duration, 2 hours**: the connection is closed with 1001.
* **$connect decides**: a status other than 2xx from the handler refuses the handshake with that status.
* **route selection** by ``$request.body.action`` over the routes given (the template's); no match and no
  ``$default`` route gets ``{"message": "Forbidden", ...}``, as API Gateway answers.
* **Management API**: ``POST``, ``GET`` and ``DELETE`` on ``@connections/ID``; an unknown or closed connection is
  410 ``GoneException``.
* **Lambda Invoke**: ``Event`` invocations (202; payload at most 256 KB, else 413) run the handler in the background
  with a context whose remaining time is the function's timeout; an invocation that outlives it is recorded in
  ``overruns`` (a test asserts none: on AWS the function would have been killed).

Not proven here: IAM and execute-api authorisation, account throttling quotas, 32 KB frame fragmentation, TLS,
Lambda's concurrency limits, freezing between invocations and retries of failed asynchronous invocations.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from ragline.testing.process import asgi_thread

Handler = Callable[[dict[str, Any], Any], Any]
MESSAGE_LIMIT = 128 * 1024  # API Gateway: WebSocket message payload size
ASYNC_PAYLOAD_LIMIT = 256 * 1024  # Lambda: asynchronous invocation payload
ACCOUNT, REGION = "123456789012", "us-east-1"


class LambdaContext:
    """The parts of Lambda's context object ragline reads: the remaining time and the function's identity."""

    def __init__(self, timeout: float, name: str) -> None:
        self.function_name = name
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self._until = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's timeout."""
        return max(0, int((self._until - time.monotonic()) * 1000))


@dataclass
class _Connection:
    id: str
    socket: WebSocket
    source_ip: str
    connected_at: float = field(default_factory=time.monotonic)
    active_at: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Invocation:
    """One invocation of the function: its event, how it was invoked, how long it ran and what it returned."""

    event: dict[str, Any]
    kind: str  # "RequestResponse" (API Gateway's integration) or "Event" (asynchronous)
    seconds: float = 0.0
    result: Any = None
    error: str = ""


class WebSocketGateway:
    """API Gateway's WebSocket API for one stage and one function; use as a context manager."""

    def __init__(self, handler: Handler, routes: Collection[str] = ("$connect", "$disconnect", "sendMessage"), *,
                 stage: str = "prod", function_name: str = "ragline-websocket", function_timeout: float = 60.0,
                 integration_timeout: float = 29.0, idle_timeout: float = 600.0, max_duration: float = 7200.0,
                 message_limit: int = MESSAGE_LIMIT) -> None:
        self.handler, self.routes, self.stage = handler, set(routes), stage
        self.function_name, self.function_timeout = function_name, function_timeout
        self.integration_timeout, self.idle_timeout, self.max_duration = integration_timeout, idle_timeout, max_duration
        self.message_limit = message_limit
        self.invocations: list[Invocation] = []
        self.overruns: list[Invocation] = []  # ran past the function's timeout: killed on AWS
        self.timeouts: list[str] = []  # routes whose integration passed the integration timeout
        self.refused_posts: list[tuple[str, int]] = []  # (connection, size) of posts over the message limit
        self.closed: dict[str, tuple[int, str]] = {}  # connection → (close code, reason) sent by the gateway
        # fault(connection, data) → (HTTP status, error code) to fail that PostToConnection, or None to deliver it
        self.fault: Callable[[str, bytes], tuple[int, str] | None] | None = None
        self._connections: dict[str, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda")
        self._lock = threading.Lock()
        self._stop: Callable[[], None] | None = None
        self.origin = ""

    # lifecycle
    def __enter__(self) -> WebSocketGateway:
        app = Starlette(routes=[
            WebSocketRoute(f"/{self.stage}", self._socket),
            Route(f"/{self.stage}/@connections/{{connection:path}}", self._manage, methods=["POST", "GET", "DELETE"]),
            Route("/2015-03-31/functions/{function}/invocations", self._invoke_api, methods=["POST"]),
        ])
        self.origin, self._stop = asgi_thread(app)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        """The WebSocket URL a client connects to (``wss://API.execute-api.REGION.amazonaws.com/STAGE`` on AWS)."""
        return f"ws{self.origin.removeprefix('http')}/{self.stage}"

    @property
    def management_endpoint(self) -> str:
        """The Management API's endpoint (``RAGLINE_WEBSOCKET_ENDPOINT``)."""
        return f"{self.origin}/{self.stage}"

    @property
    def lambda_endpoint(self) -> str:
        """Lambda's Invoke API (the ``lambda`` entry of ``RAGLINE_AWS_ENDPOINTS``)."""
        return self.origin

    # the function
    def _run(self, event: dict[str, Any], kind: str) -> Invocation:
        record = Invocation(event, kind)
        with self._lock:
            self.invocations.append(record)
        started = time.monotonic()
        try:
            record.result = self.handler(event, LambdaContext(self.function_timeout, self.function_name))
        except Exception as err:  # an unhandled error: Lambda reports it, API Gateway answers 502
            record.error = f"{type(err).__name__}: {err}"
        record.seconds = time.monotonic() - started
        if record.seconds > self.function_timeout:
            with self._lock:
                self.overruns.append(record)
        return record

    async def _integrate(self, event: dict[str, Any]) -> Invocation | None:
        """The route's synchronous invocation; None when the integration timeout passed first."""
        job = asyncio.get_running_loop().run_in_executor(self._pool, self._run, event, "RequestResponse")
        try:
            return await asyncio.wait_for(asyncio.shield(job), self.integration_timeout)
        except TimeoutError:
            self.timeouts.append(event["requestContext"]["routeKey"])
            return None

    def _context(self, connection: str, route: str, kind: str) -> dict[str, Any]:
        return {"routeKey": route, "eventType": kind, "connectionId": connection, "stage": self.stage,
                "domainName": self.origin.removeprefix("http://"), "apiId": "standin",
                "requestId": str(uuid.uuid4()), "connectedAt": int(time.time() * 1000)}

    # the WebSocket API
    async def _socket(self, ws: WebSocket) -> None:
        connection = base64.b64encode(uuid.uuid4().bytes[:10]).decode()
        source_ip = ws.client.host if ws.client else ""
        event = {"requestContext": {**self._context(connection, "$connect", "CONNECT"),
                                    "identity": {"sourceIp": source_ip}},
                 "headers": dict(ws.headers), "queryStringParameters": dict(ws.query_params) or None,
                 "isBase64Encoded": False}
        done = await self._integrate(event)
        status = 504 if done is None else 502 if done.error else int((done.result or {}).get("statusCode", 200))
        if not 200 <= status < 300:
            await ws.send_denial_response(PlainTextResponse("Forbidden" if status < 500 else "Internal server error",
                                                            status_code=status))
            return
        await ws.accept()
        conn = _Connection(connection, ws, source_ip)
        self._connections[connection] = conn
        code, reason = 1000, "client closed"
        try:
            code, reason = await self._receive(conn)
        finally:
            self._connections.pop(connection, None)
            if code != 1000 or reason != "client closed":
                self.closed[connection] = (code, reason)
            gone = {"requestContext": {**self._context(connection, "$disconnect", "DISCONNECT"),
                                       "disconnectStatusCode": code, "disconnectReason": reason}}
            asyncio.get_running_loop().run_in_executor(self._pool, self._run, gone, "RequestResponse")

    async def _receive(self, conn: _Connection) -> tuple[int, str]:
        """Route the client's messages until it leaves or the gateway closes it: (close code, reason)."""
        while True:
            now = time.monotonic()
            wait = min(conn.active_at + self.idle_timeout, conn.connected_at + self.max_duration) - now
            try:
                frame = await asyncio.wait_for(conn.socket.receive(), max(wait, 0.0))
            except TimeoutError:
                reason = "Going away: idle timeout" if now - conn.active_at >= self.idle_timeout - 0.01 else \
                    "Going away: connection duration"
                async with conn.lock:
                    await conn.socket.close(1001, reason)
                return 1001, reason
            if frame["type"] == "websocket.disconnect":
                return 1000, "client closed"
            text, data = frame.get("text"), frame.get("bytes")
            body: str = text if isinstance(text, str) else bytes(data or b"").decode(errors="replace")
            if len(body.encode()) > self.message_limit:
                async with conn.lock:
                    await conn.socket.close(1009, "Message too big")
                return 1009, "Message too big"
            conn.active_at = time.monotonic()
            route = self._route(body)
            if route is None:
                await self._deliver(conn, json.dumps({"message": "Forbidden", "connectionId": conn.id,
                                                      "requestId": str(uuid.uuid4())}))
                continue
            event = {"requestContext": {**self._context(conn.id, route, "MESSAGE"), "messageId": str(uuid.uuid4()),
                                        "identity": {"sourceIp": conn.source_ip}},
                     "body": body, "isBase64Encoded": False}
            task = asyncio.create_task(self._message(conn, event))  # API Gateway does not wait for the answer
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _route(self, body: str) -> str | None:
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError):
            action = None
        if isinstance(action, str) and action in self.routes and not action.startswith("$"):
            return action
        return "$default" if "$default" in self.routes else None

    async def _message(self, conn: _Connection, event: dict[str, Any]) -> None:
        if await self._integrate(event) is None:
            await self._deliver(conn, json.dumps({"message": "Endpoint request timed out", "connectionId": conn.id,
                                                  "requestId": event["requestContext"]["requestId"]}))

    async def _deliver(self, conn: _Connection, text: str) -> bool:
        async with conn.lock:
            if self._connections.get(conn.id) is not conn:
                return False
            try:
                await conn.socket.send_text(text)
            except Exception:  # the client left between the check and the send
                return False
        return True

    # the Management API
    async def _manage(self, request: Request) -> Response:
        connection = unquote(request.path_params["connection"])
        conn = self._connections.get(connection)
        if conn is None:
            return _error(410, "GoneException", f"connection {connection} is gone")
        if request.method == "GET":
            return JSONResponse({"identity": {"sourceIp": conn.source_ip}})
        if request.method == "DELETE":
            self._connections.pop(connection, None)
            self.closed[connection] = (1000, "closed by DeleteConnection")
            async with conn.lock:
                await conn.socket.close(1000)
            return Response(status_code=204)
        return await self._post(conn, await request.body())

    async def _post(self, conn: _Connection, data: bytes) -> Response:
        connection = conn.id
        if len(data) > self.message_limit:
            self.refused_posts.append((connection, len(data)))
            return _error(413, "PayloadTooLargeException", "Request entity too large")
        failure = self.fault(connection, data) if self.fault is not None else None
        if failure is not None:
            return _error(failure[0], failure[1], "failed by the test's fault")
        if not await self._deliver(conn, data.decode()):
            return _error(410, "GoneException", f"connection {connection} is gone")
        return Response(status_code=200)

    # Lambda's Invoke API
    async def _invoke_api(self, request: Request) -> Response:
        function = unquote(request.path_params["function"])
        if function.split(":function:")[-1].split(":")[0] != self.function_name:
            return _error(404, "ResourceNotFoundException", f"Function not found: {function}")
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        payload = await request.body()
        if kind == "Event" and len(payload) > ASYNC_PAYLOAD_LIMIT:
            return _error(413, "RequestEntityTooLargeException", "the request's payload is over 256 KB")
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._pool, self._run, json.loads(payload or b"{}"), kind)
        if kind == "Event":
            return Response(status_code=202)
        done = await job
        return JSONResponse(done.result, headers={"x-amz-executed-version": "$LATEST"})

    def connected(self) -> list[str]:
        """The ids of the open connections."""
        return list(self._connections)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code})
