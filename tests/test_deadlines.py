"""One deadline per request, derived from the caller's limit, reaching every remote call (issue 18, item 3)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.http.app import create_app
from ragline.interfaces.http.budget import HTTP_API_SECONDS, MARGIN, time_left
from ragline.resilience import read_timeout, within
from ragline.testing.fakes import FaultyOpenAIServer
from ragline.types import Deadline

from conftest import serve, write

LEX = "# What Is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational interfaces.\n"


def test_time_left_reads_the_lambda_deadline_and_the_http_apis_30_seconds():
    now = 1_000_000.0
    lambda_context = {"x-amzn-lambda-context": json.dumps({"deadline": (now + 50) * 1000})}
    assert time_left(lambda_context, now) == pytest.approx(50 - MARGIN)
    assert time_left({"x-amzn-lambda-context": json.dumps({"deadline_ms": (now + 9) * 1000})}, now) == \
        pytest.approx(9 - MARGIN)
    through_http_api = {**lambda_context, "x-amzn-request-context": json.dumps(
        {"domainName": "abc123.execute-api.us-east-1.amazonaws.com", "timeEpoch": (now - 4) * 1000})}
    assert time_left(through_http_api, now) == pytest.approx(HTTP_API_SECONDS - 4 - MARGIN)
    through_function_url = {**lambda_context, "x-amzn-request-context": json.dumps(
        {"domainName": "abc123.lambda-url.us-east-1.on.aws"})}
    assert time_left(through_function_url, now) == pytest.approx(50 - MARGIN)
    for nothing in ({}, {"x-amzn-lambda-context": "not json"}, {"x-amzn-lambda-context": "[1]"},
                    {"x-amzn-request-context": '{"domainName": 5}'}):
        assert time_left(nothing, now) is None


def test_a_stages_remote_calls_read_what_is_left_of_the_deadline():
    assert read_timeout(20.0) == 20.0
    with within(Deadline.after(3.2)):
        assert read_timeout(20.0) == 3.5  # rounded up to half seconds
        assert read_timeout(2.0) == 2.0
    with within(Deadline.after(-5)):
        assert read_timeout(20.0) == 1.0  # never below a second: the call fails fast instead
    assert read_timeout(20.0, Deadline.after(4.9)) == 5.0


@pytest.fixture
def slow_service(make_app, tmp_path):
    """The HTTP app whose model takes about 10 s to answer (200 tokens, 50 ms apart)."""
    with FaultyOpenAIServer(["slow:200:0.05"]) as model:
        app = make_app(chat_model="openai", openai_base_url=model.base_url, deadline=120.0, abstain=False)
        write(tmp_path / "kb", "lex.md", LEX)
        app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
        url, stop = serve(create_app(app))
        yield url
        stop()


@pytest.mark.parametrize("headers", [
    {"x-amzn-lambda-context": "DEADLINE"},  # the function has ~4 s left (Lambda Web Adapter's header)
    {"x-amzn-request-context": "HTTP_API"},  # through the HTTP API, 27 s after it began: 3 s left of its 30
])
def test_a_request_behind_lambda_answers_partial_within_the_invocations_time(slow_service, headers):
    now = time.time()
    values = {"DEADLINE": json.dumps({"deadline": int((now + 4) * 1000)}),
              "HTTP_API": json.dumps({"domainName": "x.execute-api.us-east-1.amazonaws.com",
                                      "timeEpoch": int((now - 27) * 1000)})}
    started = time.monotonic()
    reply = httpx.post(f"{slow_service}/v1/query", json={"question": "What is Amazon Lex?", "deadline": 60},
                       headers={k: values[v] for k, v in headers.items()}, timeout=30)
    elapsed = time.monotonic() - started
    answer = reply.json()
    assert reply.status_code == 200 and answer["partial"] and "deadline" in answer["partial_reason"]
    assert elapsed < 4.0, elapsed  # the request's 60 s were clamped to what the invocation has left


def test_without_lambda_headers_the_request_keeps_its_own_deadline(slow_service):
    reply = httpx.post(f"{slow_service}/v1/query", json={"question": "What is Amazon Lex?", "deadline": 1.5},
                       timeout=30)
    assert reply.json()["partial"] and "1.5 s" in reply.json()["partial_reason"]


def test_a_stalled_kendra_is_cut_at_the_answers_deadline_not_its_read_timeout(aws_env, tmp_path):
    from ragline.compose import Ragline
    from ragline.query.engine import Query
    from ragline.settings import Settings
    from ragline.testing.aws import FakeAWSModels

    with FakeAWSModels(passages=[{"id": "1", "title": "Lex", "text": LEX, "uri": "s3://kb/lex.md"}]) as aws:
        aws.kendra_delay = 8.0
        rag = Ragline(Settings(home=tmp_path, retriever="kendra", kendra_index_id="0" * 36, chat_model="extractive",
                               request_timeout=20.0, aws_region="us-east-1",
                               aws_endpoints={"kendra": aws.endpoint_url}, retry_base_delay=0.05))
        started = time.monotonic()
        events = list(rag.engine.stream(Query("What is Amazon Lex?", deadline=2.0)))
        elapsed = time.monotonic() - started
    assert elapsed < 4.5, elapsed  # was 8 s: the Retrieve call waited out Kendra with its 20 s read timeout
    assert type(events[-1]).__name__ == "ErrorEvent" and "deadline" in events[-1].message
