"""Retries, failover, deadlines and partial answers against a real misbehaving HTTP server on 127.0.0.1."""

from __future__ import annotations

import random
import time

import pytest

from ragline.errors import ModelError
from ragline.ingest.pipeline import expand_paths, source_items
from ragline.query.engine import Query
from ragline.resilience import RetryPolicy
from ragline.testing.fakes import FaultyOpenAIServer

from conftest import write

LEX = "# What Is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational interfaces.\n"


@pytest.fixture
def make_remote(make_app, tmp_path):
    def build(server: FaultyOpenAIServer, **overrides):
        settings = {"chat_model": "openai", "openai_base_url": server.base_url, "openai_model": "main",
                    "retry_base_delay": 0.05, "retry_max_delay": 0.2, **overrides}
        app = make_app(**settings)
        write(tmp_path / "kb", "lex.md", LEX)
        app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
        return app

    return build


def test_throttling_and_server_errors_are_retried_with_jittered_backoff(make_remote) -> None:
    with FaultyOpenAIServer(["429", "503", "ok"]) as server:
        answer = make_remote(server).engine.ask(Query("What is Amazon Lex?", k=1))
    assert answer.text == "Amazon Lex builds chatbots [1]."
    assert [a["outcome"][:27] for a in answer.attempts] == [
        f"{server.base_url} answered 429"[:27], f"{server.base_url} answered 503"[:27], "ok"]
    waits = [a["waited_s"] for a in answer.attempts]
    assert waits[0] == 0.0
    assert 0.0 <= waits[1] <= 0.05 and 0.0 <= waits[2] <= 0.1  # full jitter under caps 0.05, 0.1
    arrivals = [t for t, _ in server.requests]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= waits[1] - 0.005


def test_a_request_that_will_fail_again_is_not_retried(make_remote) -> None:
    with FaultyOpenAIServer(["400"]) as server:
        app = make_remote(server)
        with pytest.raises(ModelError, match="answered 400"):
            app.engine.ask(Query("What is Amazon Lex?", k=1))
    assert len(server.requests) == 1


def test_failover_to_the_next_model_when_retries_are_spent(make_remote) -> None:
    with FaultyOpenAIServer(["500", "500", "ok"]) as server:
        app = make_remote(server, retry_attempts=2, fallback_models=[f"openai:backup@{server.base_url}"])
        answer = app.engine.ask(Query("What is Amazon Lex?", k=1))
    assert [body["model"] for _, body in server.requests] == ["main", "main", "backup"]
    assert [(a["model"], a["outcome"] == "ok") for a in answer.attempts] == [
        ("main", False), ("main", False), ("backup", True)]
    assert not answer.partial


def test_a_connection_dropped_mid_answer_gives_a_partial_answer_not_a_retry(make_remote) -> None:
    with FaultyOpenAIServer(["drop:2", "ok"]) as server:
        answer = make_remote(server).engine.ask(Query("What is Amazon Lex?", k=1))
    assert answer.partial
    assert answer.text == "Amazon Lex"
    assert "failed mid-answer" in answer.partial_reason
    assert len(server.requests) == 1  # the user already saw tokens: never restarted behind their back


def test_deadline_before_the_first_token_returns_the_sources_marked_partial(make_remote) -> None:
    with FaultyOpenAIServer(["delay:3"]) as server:
        started = time.monotonic()
        answer = make_remote(server).engine.ask(Query("What is Amazon Lex?", k=1, deadline=0.5))
        elapsed = time.monotonic() - started
    assert answer.partial and answer.text == ""
    assert "deadline" in answer.partial_reason or "timed out" in answer.partial_reason
    assert answer.sources[0].doc_id.endswith("lex.md")
    assert elapsed < 2.0  # the read timeout was cut to the deadline


def test_deadline_mid_stream_keeps_the_text_so_far(make_remote) -> None:
    with FaultyOpenAIServer(["stall:3:5"]) as server:
        started = time.monotonic()
        answer = make_remote(server).engine.ask(Query("What is Amazon Lex?", k=1, deadline=1.0))
        elapsed = time.monotonic() - started
    assert answer.partial
    assert answer.text == "Amazon Lex builds"
    assert elapsed < 3.0


def test_full_jitter_bounds() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=4.0, rng=random.Random(7))
    for retry, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0)]:
        delays = [policy.delay(retry) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= cap
        assert max(delays) > cap * 0.8  # the whole range is used, not a fixed sleep
