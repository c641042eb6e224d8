"""``/mcp`` on the HTTP app: the MCP server (``interfaces/mcp.py``) behind the service's auth, built on first use.

Importing the MCP SDK takes about a second, so nothing of it is imported until an MCP client first calls: a server
(or a Lambda) that never serves MCP never pays for it. The endpoint is stateless Streamable HTTP answering JSON,
so each call stands alone, as a load balancer or a Lambda serves it. On loopback with no auth, the SDK's
DNS-rebinding protection keeps a web page from calling it; with auth on, the credential does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request

from ragline.errors import RaglineError
from ragline.interfaces.http.contract import error_response

if TYPE_CHECKING:
    from ragline.compose import Ragline

Identify = Callable[[str | None, str], str]  # (Authorization header, client address) -> tenant, or AuthError


class MCPRoute:
    """The ASGI endpoint at ``/mcp``: refuses a request without a valid credential, then hands it to the SDK."""

    def __init__(self, rag: Ragline, identify: Identify, loopback_only: bool) -> None:
        self.rag, self.identify, self.loopback_only = rag, identify, loopback_only
        self.handler: Any = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Check the credential, start the MCP server if this is its first call, and pass the request on."""
        request = Request(scope)
        try:
            await anyio.to_thread.run_sync(self.identify, request.headers.get("authorization"),
                                           request.client.host if request.client else "")
        except RaglineError as err:
            await error_response(err)(scope, receive, send)
            return
        if self.handler is None:
            async with self._lock:
                if self.handler is None:
                    await self._start()
        await self.handler(scope, receive, send)

    async def _start(self) -> None:
        server, handler = await anyio.to_thread.run_sync(self._build)  # the SDK's import, off the event loop
        ready = asyncio.Event()

        async def keep_running() -> None:  # the session manager's task group lives in a task of its own
            async with server.session_manager.run():
                ready.set()
                await self._stopping.wait()

        self._task = asyncio.create_task(keep_running())
        await ready.wait()
        self.handler = handler

    def _build(self) -> tuple[Any, Any]:
        from mcp.server.transport_security import TransportSecuritySettings
        from starlette.routing import Route

        from ragline.interfaces.mcp import build_server

        def tenant_of(headers: Mapping[str, str] | None) -> str:
            return self.identify((headers or {}).get("authorization"), "")

        server = build_server(self.rag, tenant_of)
        security = None if self.loopback_only else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        sdk_app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                             transport_security=security)
        return server, next(r.endpoint for r in sdk_app.routes if isinstance(r, Route) and r.path == "/mcp")

    async def aclose(self) -> None:
        """Stop the MCP server, if it was started (the app's shutdown)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
