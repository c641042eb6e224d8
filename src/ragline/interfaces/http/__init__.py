"""The HTTP service: one ASGI app over the same engine (JSON, Server-Sent Events, OpenAI-compatible API)."""

from __future__ import annotations

from ragline.interfaces.http.app import create_app

__all__ = ["create_app"]
