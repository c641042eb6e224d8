"""The HTTP service on a real uvicorn server on 127.0.0.1, used by real clients (httpx, the openai SDK)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.http import create_app

from conftest import serve, sse_post, write

LEX = (
    "# What Is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational interfaces using voice "
    "and text.\n\n## Pricing\n\nWith Amazon Lex you pay only for what you use.\n"
)


@pytest.fixture
def server(make_app, tmp_path) -> Iterator[str]:
    app = make_app(chat_model="extractive", cache=True)
    write(tmp_path / "kb", "lex.md", LEX)
    write(tmp_path / "kb", "notes.txt", "Meeting notes: the launch moved to March.")
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    url, stop = serve(create_app(app))
    yield url
    stop()


def test_query_json(server) -> None:
    r = httpx.post(f"{server}/v1/query", json={"question": "What is Amazon Lex?", "k": 2}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert body["answer"].startswith("Amazon Lex is an AWS service")
    assert body["citations"][0]["number"] == 1 and body["sources"][0]["doc_id"].endswith("lex.md")
    assert body["cache"] == "miss"
    again = httpx.post(f"{server}/v1/query", json={"question": "what is amazon lex", "k": 2}, timeout=60).json()
    assert again["cache"] == "hit"


def test_query_server_sent_events(server) -> None:
    events = sse_post(f"{server}/v1/query", {"question": "When is the launch?", "stream": True})
    kinds = [k for k, _ in events]
    assert kinds[0] == "sources" and kinds[-2:] == ["usage", "done"] and "token" in kinds
    text = "".join(d["text"] for k, d in events if k == "token")
    assert "March" in text and events[-1][1]["answer"]["answer"] == text.strip()


def test_openai_sdk_against_chat_completions(server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    assert {m.id for m in client.models.list()} == {"ragline", "ragline-extractive"}
    reply = client.chat.completions.create(
        model="ragline", messages=[{"role": "user", "content": "What is Amazon Lex?"}])
    assert reply.choices[0].message.content.startswith("Amazon Lex is an AWS service")
    extra = reply.model_extra or {}
    assert extra["sources"][0]["doc_id"].endswith("lex.md")
    assert "[1]" in reply.choices[0].message.content  # the marker resolves to sources[0]
    stream = client.chat.completions.create(
        model="ragline-extractive", stream=True,
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                  {"role": "user", "content": "When is the launch?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "March" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["sources"]


def test_bad_requests_get_clear_errors(server) -> None:
    unknown = httpx.post(f"{server}/v1/chat/completions", json={
        "model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})
    assert unknown.status_code == 422  # the schema lists the model names (GET /v1/models too)
    assert unknown.json()["error"]["message"] == "body.model: Input should be 'ragline' or 'ragline-extractive'"
    too_long = httpx.post(f"{server}/v1/query", json={"question": "x" * 100_000})
    assert too_long.status_code == 422
    assert "the question is 100,000 characters; the limit is 4,000" in too_long.json()["error"]["message"]
    malformed = httpx.post(f"{server}/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    missing = httpx.post(f"{server}/v1/query", json={"k": 3})
    assert missing.status_code == 422 and "question" in missing.text
    assert httpx.get(f"{server}/v1/documents/nope.md").status_code == 404


def test_documents_health_metrics_openapi(server) -> None:
    docs = httpx.get(f"{server}/v1/documents").json()["documents"]
    assert len(docs) == 2 and all(d["status"] == "ready" for d in docs)
    doc_id = next(d["doc_id"] for d in docs if d["doc_id"].endswith("notes.txt"))
    assert httpx.get(f"{server}/v1/documents/{doc_id}").json()["chunks"] == 1
    assert httpx.delete(f"{server}/v1/documents/{doc_id}").json() == {"deleted": doc_id}
    assert httpx.delete(f"{server}/v1/documents/{doc_id}").status_code == 404
    answer = httpx.post(f"{server}/v1/query", json={"question": "When is the launch?"}, timeout=60).json()
    assert not any(s["doc_id"] == doc_id for s in answer["sources"])
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"
    metrics = httpx.get(f"{server}/metrics").text
    assert 'ragline_requests_total{method="POST",route="/v1/query",status="200"}' in metrics
    assert 'ragline_stage_seconds_count{stage="retrieve"}' in metrics
    assert 'ragline_errors_total{type="NotFoundError"}' in metrics
    spec = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/query", "/v1/chat/completions", "/v1/models", "/v1/documents"} <= set(spec["paths"])


def test_a_client_that_disconnects_mid_stream_stops_the_generation(make_app, tmp_path) -> None:
    import re
    import time

    from ragline.testing.fakes import FaultyOpenAIServer

    with FaultyOpenAIServer(["slow:200:0.05"]) as model:
        app = make_app(chat_model="openai", openai_base_url=model.base_url)
        write(tmp_path / "kb", "lex.md", LEX)
        app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
        url, stop = serve(create_app(app))
        try:
            def gauges() -> tuple[float, float]:
                text = httpx.get(f"{url}/metrics").text
                fds = float(re.search(r"^process_open_fds (\S+)$", text, re.MULTILINE).group(1))
                tasks = float(re.search(r"^ragline_asyncio_tasks (\S+)$", text, re.MULTILINE).group(1))
                return fds, tasks

            before = gauges()
            with httpx.stream("POST", f"{url}/v1/query", json={"question": "What is Amazon Lex?", "stream": True},
                              timeout=30) as r:
                for line in r.iter_lines():
                    if line.startswith("event: token"):
                        break  # the user closes the tab after the first token
            gone = time.monotonic()
            deadline = gone + 10
            while not model.abandoned and time.monotonic() < deadline:
                time.sleep(0.05)
            assert model.abandoned, "the model kept generating for a client that had left"
            stopped_at, tokens_sent = model.abandoned[0]
            assert stopped_at - gone < 3.0 and tokens_sent < 100
            time.sleep(1.0)
            assert gauges() == before  # no task or file handle left behind
        finally:
            stop()


def test_images_in_a_query_are_checked_and_refused_clearly_by_a_text_model(server) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
    refused = httpx.post(f"{server}/v1/query", timeout=60, json={
        "question": "What is in this picture?", "images": [{"media_type": "image/png", "data": png}]})
    assert refused.status_code == 422
    assert "does not take images; use a Bedrock model that does" in refused.json()["error"]["message"]
    garbled = httpx.post(f"{server}/v1/query", timeout=60, json={
        "question": "What is this?", "images": [{"media_type": "image/png", "data": "not base64!"}]})
    assert garbled.status_code == 422 and "not valid base64" in garbled.json()["error"]["message"]
