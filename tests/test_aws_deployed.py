"""The WebSocket API as deployed: the handler behind the loopback API Gateway stand-in (``testing/apigateway.py``),
which enforces the 29 s integration timeout, the 128 KB message quota and the idle timeout, with the routes and the
function environment the template declares, a real WebSocket client, moto and the loopback Bedrock."""

from __future__ import annotations

import json
import os
import time

import pytest
import websockets
from websockets.sync.client import connect

from ragline.interfaces.aws import handlers
from ragline.testing.apigateway import MESSAGE_LIMIT, WebSocketGateway
from ragline.testing.provision import load_template
from test_aws import FIXTURES, QUESTION, TEMPLATE, aws, drain_all, sign_in


@pytest.fixture
def deployed(stack, moto_url, monkeypatch):
    """The stand-in in front of the WebSocket function, configured as the template configures it."""
    template = load_template(TEMPLATE)
    resources = template["Resources"]
    routes = [r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    function = stack.resolve(resources["WebSocketFunction"]["Properties"]["FunctionName"])
    timeout = float(template["Parameters"]["QueryTimeout"]["Default"])
    with WebSocketGateway(handlers.websocket, routes, function_name=function, function_timeout=timeout) as gateway:
        env = stack.environment(template, "WebSocketFunction")
        assert env["RAGLINE_WEBSOCKET_ANSWER"] == "async"
        endpoints = json.loads(os.environ["RAGLINE_AWS_ENDPOINTS"])  # the loopback Bedrock's, from `stack`
        monkeypatch.setenv("RAGLINE_WEBSOCKET_ANSWER", "async")
        monkeypatch.setenv("RAGLINE_WEBSOCKET_ENDPOINT", gateway.management_endpoint)
        monkeypatch.setenv("RAGLINE_AWS_ENDPOINTS", json.dumps({**endpoints, "lambda": gateway.lambda_endpoint}))
        handlers._rag.cache_clear()
        yield gateway
        assert gateway.overruns == [], "an invocation ran past the function's timeout"
    handlers._rag.cache_clear()


def ask(gateway, token, question=QUESTION, turn="t1", timeout=90):
    """Connect as the page does, send one sendMessage, and read every message until ``done`` or ``error``."""
    received = []
    with connect(f"{gateway.url}?token={token}", max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"action": "sendMessage", "type": "ask", "id": turn, "question": question}))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            raw = ws.recv(timeout=end - time.monotonic())
            received.append((len(raw.encode()), json.loads(raw)))
            if received[-1][1].get("type") in ("done", "error") or "message" in received[-1][1]:
                break
    return received


@pytest.fixture
def token(stack, moto_url):
    """A signed-in user's token; the user's upload is ingested."""
    access, tenant = sign_in(stack, moto_url)
    aws("s3", moto_url).put_object(Bucket=stack.refs["DocumentsBucket"], Key=f"uploads/{tenant}/sample.pdf",
                                   Body=(FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes())
    drain_all(stack, moto_url)
    return access


def test_an_answer_longer_than_the_integration_timeout_arrives_whole(deployed, token, models):
    """40 s of answer: sendMessage returns at once, the asynchronous invocation streams it; 29 s cuts nothing."""
    models.script = ["slow:4"]  # 10 ConverseStream events (6 of them tokens), 4 s apart
    started = time.monotonic()
    received = ask(deployed, token)
    elapsed = time.monotonic() - started
    events = [event for _, event in received]
    assert events[-1]["type"] == "done", events[-3:]
    answer = events[-1]["answer"]
    assert not answer["partial"] and answer["answer"].endswith("[1].") and answer["sources"]
    assert all(e.get("id") == "t1" for e in events)  # the page matches events to its turn by id
    assert "".join(e["text"] for e in events if e["type"] == "token") == answer["answer"]
    assert elapsed > 35, elapsed  # the answer really outlived API Gateway's 29 s
    assert deployed.timeouts == []
    route = next(i for i in deployed.invocations if i.event["requestContext"].get("routeKey") == "sendMessage")
    assert route.seconds < 5 and route.result == {"statusCode": 200}


def test_an_inline_answer_is_cut_by_the_integration_timeout(deployed, token, models, monkeypatch):
    """The stand-in's limit is real: answering within the route's invocation, a slow answer gets API Gateway's
    'Endpoint request timed out' (scaled down: a 2 s integration timeout and a 4 s answer)."""
    monkeypatch.setenv("RAGLINE_WEBSOCKET_ANSWER", "inline")
    handlers._rag.cache_clear()
    deployed.integration_timeout = 2.0
    models.script = ["slow:0.35"]
    received = ask(deployed, token)
    assert received[-1][1]["message"] == "Endpoint request timed out"
    assert deployed.timeouts == ["sendMessage"]


def test_a_300_kb_answer_arrives_in_messages_under_128_kb(deployed, token, models):
    models.script = ["long:300000"]
    received = ask(deployed, token)
    events = [event for _, event in received]
    assert events[-1]["type"] == "done", events[-1]
    assert max(size for size, _ in received) <= MESSAGE_LIMIT and deployed.refused_posts == []
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert len(text) > 300_000 and "[1]" in text[:100]
    answer = events[-1]["answer"]
    assert "answer" in answer["omitted"] and answer["answer"] is None  # the tokens carried the text
    verdicts = [e for e in events if e["type"] == "verdict"]
    assert verdicts and all(size <= MESSAGE_LIMIT for size, e in received if e["type"] == "verdict")


def test_a_post_that_fails_reaches_the_client_as_an_error(deployed, token, models):
    """API Gateway fails every token post (500 after ragline's retries): the client is told, not left waiting."""
    deployed.fault = lambda connection, data: (500, "InternalServerErrorException") if b'"token"' in data else None
    received = ask(deployed, token)
    last = received[-1][1]
    assert last["type"] == "error" and last["error"] == "DeliveryError" and last["id"] == "t1"
    assert "InternalServerErrorException" in last["message"]


def test_a_message_over_the_gateways_quota_becomes_an_error_event(deployed, token, models):
    """A gateway whose quota is lower than the handler assumes (413 PayloadTooLarge on the sources): an error event."""
    deployed.message_limit = 2000
    received = ask(deployed, token)
    last = received[-1][1]
    assert last["type"] == "error" and "PayloadTooLargeException" in last["message"]
    assert deployed.refused_posts


def test_pings_keep_an_idle_connection_open_and_silence_closes_it(deployed, token):
    deployed.idle_timeout = 1.5
    with connect(f"{deployed.url}?token={token}") as quiet, connect(f"{deployed.url}?token={token}") as pinging:
        for _ in range(8):
            pinging.send(json.dumps({"action": "ping"}))
            time.sleep(0.5)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            quiet.recv(timeout=5)
        assert closed.value.rcvd.code == 1001
        pinging.send(json.dumps({"action": "ping"}))  # still open after 4 s; pings get no reply
        with pytest.raises(TimeoutError):
            pinging.recv(timeout=0.5)


def test_the_handshake_refuses_a_missing_token_and_the_gateway_a_message_over_128_kb(deployed, token):
    with pytest.raises(websockets.InvalidStatus) as refused:
        connect(deployed.url)
    assert refused.value.response.status_code == 401
    with connect(f"{deployed.url}?token={token}", max_size=None) as ws:
        ws.send(json.dumps({"action": "sendMessage", "question": "x" * (MESSAGE_LIMIT + 1)}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009


def test_a_malformed_message_gets_an_error_event_through_the_default_route(deployed, token):
    with connect(f"{deployed.url}?token={token}") as ws:
        ws.send("not json")
        reply = json.loads(ws.recv(timeout=10))
    assert reply["type"] == "error" and "malformed message" in reply["message"]
