"""Hostile input to the HTTP API (issue 20, item 4): each of these answered 500 with a plain-text body; now each is a
4xx JSON error in the documented shape ``{"error": {"type", "message"}}``, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.http import create_app

from conftest import serve, write


@pytest.fixture(scope="module")
def server(tmp_path_factory, minilm) -> Iterator[str]:
    from ragline.compose import Ragline
    from ragline.settings import Settings

    home = tmp_path_factory.mktemp("hostile")
    app = Ragline(Settings(home=home / "home", chat_model="extractive", cache=False), embedder=minilm)
    write(home / "kb", "lex.md", "# Amazon Lex\n\nAmazon Lex is an AWS service for building chatbots.\n")
    app.ingestor.run(source_items(expand_paths([str(home / "kb")])))
    url, stop = serve(create_app(app))
    yield url
    stop()


RAW = {  # bodies as a hostile client sends them: JSON with NaN/Infinity literals, lone surrogates as \\u escapes
    "an image that is not base64": '{"question": "What is Amazon Lex?", "images": [{"media_type": "image/png", '
                                   '"data": "\\u00e9"}]}',
    "an infinite deadline": '{"question": "What is Amazon Lex?", "deadline": Infinity}',
    "a NaN deadline": '{"question": "What is Amazon Lex?", "deadline": NaN}',
    "a NaN k": '{"question": "What is Amazon Lex?", "k": NaN}',
    "a lone surrogate in the question": '{"question": "What is \\ud800 Lex?"}',
    "a lone surrogate in a filter key": '{"question": "What is Lex?", "filters": {"\\ud800": "x"}}',
    "a lone surrogate in a filter value": '{"question": "What is Lex?", "filters": {"source": "\\udfff"}}',
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("what", list(RAW))
def test_a_hostile_query_gets_a_4xx_json_error(server, what, stream) -> None:
    body = RAW[what]
    if stream:
        body = body[:-1] + ', "stream": true}'
    r = httpx.post(f"{server}/v1/query", content=body.encode(), headers={"content-type": "application/json"},
                   timeout=30)
    assert 400 <= r.status_code < 500, (what, r.status_code, r.text[:200])
    error = r.json()["error"]  # the documented shape, whatever failed
    assert error["type"] and error["message"]
    assert "\ud800" not in r.text  # the bad input is named, not echoed back unencodable


def test_a_lone_surrogate_in_chat_completions_content_is_a_4xx(server) -> None:
    body = '{"model": "ragline", "messages": [{"role": "user", "content": "What is \\ud800 Lex?"}]}'
    r = httpx.post(f"{server}/v1/chat/completions", content=body.encode(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"]
    ok = httpx.post(f"{server}/v1/query", json={"question": "What is Amazon Lex?"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["answer"].startswith("Amazon Lex")  # still serving


def test_a_quoted_phrase_is_searched_as_its_words(server) -> None:
    """schemathesis found it: '"Amazon Lex"' became a phrase query that the BM25 index cannot run (500)."""
    for question in ('"Amazon Lex"', 'What is "Amazon Lex"?', '"'):
        r = httpx.post(f"{server}/v1/query", json={"question": question}, timeout=30)
        assert r.status_code == 200, (question, r.text[:200])
    assert "chatbots" in httpx.post(f"{server}/v1/query", json={"question": '"Amazon Lex"'}, timeout=30).text
