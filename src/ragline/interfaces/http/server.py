"""How ``ragline serve`` runs the app on uvicorn: with a deadline for request headers.

uvicorn times out idle keep-alive connections but not a client that sends its headers a byte at a time
("slowloris"): 50 such sockets were held for 70 s. Behind an ALB or API Gateway the front does this; when
``ragline serve`` faces a network itself, ``HeaderDeadline`` closes a connection whose request headers have not
all arrived ``RAGLINE_HEADER_TIMEOUT`` seconds after its first byte (or after it connected).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ragline.settings import Settings

log = logging.getLogger("ragline.http")


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request's headers."""

    header_timeout = 10.0
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock as the client connects."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Start the clock at a request's first byte; stop it once its headers are complete."""
        if self._awaiting_headers():
            self._arm()
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm()

    def handle_websocket_upgrade(self, event: Any) -> None:
        """A WebSocket has its own protocol from here: no header clock."""
        self._disarm()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            log.warning("closed a connection from %s: its request headers took over %.0f s",
                        self.client[0] if self.client else "?", self.header_timeout)
            self.transport.close()


def server_config(app: Any, settings: Settings, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """Uvicorn's configuration for the app: the header deadline, and uvicorn's own keep-alive timeout."""
    protocol = type("RaglineHTTP", (HeaderDeadline,), {"header_timeout": settings.header_timeout})
    return uvicorn.Config(app, host=host, port=port, http=protocol, timeout_keep_alive=5, **extra)


def run(settings: Settings, host: str, port: int) -> None:
    """Serve ragline's app over these settings until interrupted."""
    from ragline.compose import Ragline
    from ragline.interfaces.http import create_app

    uvicorn.Server(server_config(create_app(Ragline(settings)), settings, host, port, log_level="warning")).run()
