from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from ragline.errors import ConfigError, InputError, ModelUnavailableError
from ragline.ingest.pipeline import expand_paths, source_items
from ragline.providers.openai import OpenAIChatModel
from ragline.query.engine import Query
from ragline.testing.fakes import reply_json
from ragline.types import Done, Message, Sources, Token, UsageEvent, Verdict

from conftest import write

LEX = (
    "# What Is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational interfaces for applications "
    "using voice and text. It provides automatic speech recognition and natural language understanding.\n\n"
    "## Pricing\n\nWith Amazon Lex you pay only for what you use. There is no minimum fee.\n"
)
OTHER = "# Amazon S3\n\nAmazon S3 stores objects in buckets. Objects can be up to five terabytes in size.\n"


def ingest_lex(app, tmp_path):
    folder = tmp_path / "kb"
    write(folder, "lex.md", LEX)
    write(folder, "s3.md", OTHER)
    app.ingestor.run(source_items(expand_paths([str(folder)])))
    return app


def test_extractive_answers_are_deterministic_and_cited(make_app, tmp_path) -> None:
    app = ingest_lex(make_app(chat_model="extractive"), tmp_path)
    first = app.engine.ask(Query("What is Amazon Lex?", k=3))
    second = app.engine.ask(Query("What is Amazon Lex?", k=3))
    assert first.text == second.text
    assert first.text.startswith("Amazon Lex is an AWS service for building conversational interfaces")
    assert first.citations and first.invalid_citations == 0
    assert first.sources[first.citations[0].number - 1].doc_id.endswith("lex.md")
    assert set(first.timings) >= {"retrieve", "prompt", "first_token", "generate", "total"}


def test_stream_order_is_sources_tokens_and_verdicts_then_done(make_app, tmp_path) -> None:
    app = ingest_lex(make_app(chat_model="extractive"), tmp_path)
    events = list(app.engine.stream(Query("How is Amazon Lex priced?", k=2)))
    assert isinstance(events[0], Sources)
    assert all(isinstance(e, Token | Verdict) for e in events[1:-2]) and isinstance(events[1], Token)
    assert isinstance(events[-2], UsageEvent)
    assert isinstance(events[-1], Done)
    text = "".join(e.text for e in events[1:-2] if isinstance(e, Token))
    assert text.strip().startswith(events[-1].answer.text[:20])
    verdicts = [e for e in events if isinstance(e, Verdict)]
    assert verdicts == events[-1].answer.sentences and all(v.text in text for v in verdicts)


def test_no_documents_means_i_dont_know(make_app) -> None:
    answer = make_app(chat_model="extractive").engine.ask(Query("What is Amazon Lex?"))
    assert answer.text == "I don't know: no documents match this question."
    assert answer.sources == []


def test_bad_questions_are_refused_with_the_reason(make_app) -> None:
    engine = make_app(chat_model="extractive").engine
    with pytest.raises(InputError, match="the question is empty"):
        engine.ask(Query("   "))
    with pytest.raises(InputError, match=r"the question is 100,000 characters; the limit is 4,000"):
        engine.ask(Query("x" * 100_000))


def test_unknown_provider_lists_the_valid_ones(make_app) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'local', 'extractive', 'openai', 'bedrock' or 'knowledge-base'"):
        make_app(chat_model="gpt-17")


@pytest.mark.slow
def test_real_llama_cpp_answer_with_a_small_token_budget(make_app, tmp_path) -> None:
    app = ingest_lex(make_app(chat_model="local", max_tokens=24), tmp_path)
    try:
        answer = app.engine.ask(Query("What is Amazon Lex?", k=2, max_tokens=24))
    finally:
        app.responder.close()
    assert answer.model == "SmolLM2-135M-Instruct.Q4_1"
    assert answer.text.strip()
    assert 0 < answer.usage.completion_tokens <= 24
    assert answer.usage.prompt_tokens > 50  # the sources were in the prompt
    assert answer.sources[0].doc_id.endswith("lex.md")
    assert answer.timings["first_token"] <= answer.timings["total"]


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A loopback OpenAI-compatible server: streams a fixed answer, or fails on command (model name)."""

    requests: ClassVar[list[dict]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if body["model"] == "missing":
            self._json(404, {"error": {"message": "The model `missing` does not exist"}})
            return
        if body["model"] == "busy":
            self._json(429, {"error": {"message": "Rate limit reached"}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["Amazon Lex ", "builds chatbots ", "[1]", " [9]."]:
            self._event({"choices": [{"delta": {"content": piece}}]})
        self._event({"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 7}})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: dict) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _json(self, status: int, payload: dict) -> None:
        reply_json(self, status, payload)


@pytest.fixture
def openai_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_streaming_over_real_http(make_app, tmp_path, openai_server, monkeypatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-test")
    app = ingest_lex(make_app(chat_model="openai", openai_base_url=openai_server, openai_model="m1",
                              openai_api_key_env="MY_KEY"), tmp_path)
    events = list(app.engine.stream(Query("What is Amazon Lex?", k=2)))
    answer = events[-1].answer
    assert [e.text for e in events if isinstance(e, Token)] == ["Amazon Lex ", "builds chatbots ", "[1]", " [9]."]
    assert answer.text == "Amazon Lex builds chatbots [1]."  # [9] was never retrieved: removed
    assert answer.invalid_citations == 1
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (120, 7)
    sent = _FakeOpenAI.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test" and sent["stream"] is True
    assert "[1]" in sent["messages"][-1]["content"]


def test_openai_compatible_errors_say_what_happened(openai_server) -> None:
    messages = [Message("user", "hi")]
    with pytest.raises(ConfigError, match="model 'missing' not found"):
        list(OpenAIChatModel(base_url=openai_server, model="missing").stream(messages, max_tokens=5))
    with pytest.raises(ModelUnavailableError, match="answered 429 \\(throttled or unavailable\\)"):
        list(OpenAIChatModel(base_url=openai_server, model="busy").stream(messages, max_tokens=5))
    with pytest.raises(ModelUnavailableError, match="cannot connect"):
        list(OpenAIChatModel(base_url="http://127.0.0.1:9/v1", model="m").stream(messages, max_tokens=5))
