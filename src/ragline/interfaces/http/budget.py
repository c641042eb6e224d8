"""How long an HTTP request may take when the app runs in Lambda behind the Lambda Web Adapter.

The adapter forwards the invocation's context as the ``x-amzn-lambda-context`` header (JSON; ``deadline``, or
``deadline_ms`` in some versions, is the epoch millisecond at which Lambda stops the function) and the request's as
``x-amzn-request-context``. A request through an API Gateway HTTP API (``*.execute-api.*``) is cut by the gateway at
30 s whatever the function's timeout; one through the Function URL is not. ``time_left`` is the least of these, less a
margin for the partial answer to reach the client; a request's own ``deadline`` is clamped to it. Off Lambda there
are no such headers and nothing is clamped (a client that sends them can only shorten its own answer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

MARGIN = 2.0  # seconds kept to send the partial answer
HTTP_API_SECONDS = 30.0  # API Gateway HTTP API: maximum integration timeout


def time_left(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds this request may still take (None: no limit known)."""
    now = time.time() if now is None else now
    limits = []
    context = _json(headers.get("x-amzn-lambda-context"))
    deadline_ms = context.get("deadline", context.get("deadline_ms"))
    if isinstance(deadline_ms, int | float) and deadline_ms > 0:
        limits.append(deadline_ms / 1000 - now)
    request = _json(headers.get("x-amzn-request-context"))
    if ".execute-api." in str(request.get("domainName", "")):
        started = request.get("timeEpoch", request.get("requestTimeEpoch"))
        elapsed = now - started / 1000 if isinstance(started, int | float) and started > 0 else 0.0
        limits.append(HTTP_API_SECONDS - max(0.0, elapsed))
    return min(limits) - MARGIN if limits else None


def _json(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
