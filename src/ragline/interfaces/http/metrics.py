"""Prometheus metrics of one app: requests, latency per route and per answer stage, cache outcomes, errors."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragline.types import Answer

_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Counters and histograms in a registry of their own (several apps can live in one process)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ragline_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("ragline_request_seconds", "HTTP request latency", ["route"],
                                 buckets=_STAGE_BUCKETS, registry=self.registry)
        self.stages = Histogram("ragline_stage_seconds", "Answer stage durations", ["stage"],
                                buckets=_STAGE_BUCKETS, registry=self.registry)
        self.cache = Counter("ragline_answer_cache", "Answer cache lookups", ["outcome"], registry=self.registry)
        self.partial = Counter("ragline_partial_answers", "Answers cut short", registry=self.registry)
        self.errors = Counter("ragline_errors", "Errors returned", ["type"], registry=self.registry)
        self.queue = Gauge("ragline_ingest_queue_depth", "Ingestion jobs queued or running", registry=self.registry)
        self.tasks = Gauge("ragline_asyncio_tasks", "Asyncio tasks alive in the server's loop", registry=self.registry)
        ProcessCollector(registry=self.registry)  # process_open_fds, memory, CPU

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def answer(self, answer: Answer) -> None:
        """Record one answer's stages and cache outcome."""
        for stage, seconds in answer.timings.items():
            self.stages.labels(stage).observe(seconds)
        self.cache.labels(answer.cache).inc()
        if answer.partial:
            self.partial.inc()

    def error(self, kind: str) -> None:
        """Count an error by type."""
        self.errors.labels(kind).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class CountRequests:
    """ASGI middleware: count each HTTP request by method, route and status, with its latency.

    Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs the app in a task group of its own
    and would turn an error raised while the body is read (a body over its limit) into an exception group.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the status it is answered with."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            route = scope.get("route")
            path = route.path if isinstance(route, Route | WebSocketRoute) else "unmatched"
            self.metrics.request(scope["method"], path, status, time.perf_counter() - started)
