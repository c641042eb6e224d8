"""Prometheus metrics of one app: requests, latency per route and per answer stage, cache outcomes, errors."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

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
