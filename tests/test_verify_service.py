"""Verdicts as users see them: a model that hallucinates on purpose (loopback, OpenAI-compatible) behind the real
service on uvicorn, read through SSE, JSON, the local WebSocket, the openai SDK, the CLI and the answer cache.
(The Lambda WebSocket handler is in test_aws.py, the page in test_web_page.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.http import create_app
from ragline.testing.hallucinate import HallucinatingOpenAIServer

from conftest import serve, sse_post, write

DOCS = {
    "lex.md": "# Amazon Lex\n\nAmazon Lex is an AWS service for building conversational interfaces for bots.\n",
    "utterances.md": "# Utterances\n\nAmazon Lex stores the utterances of bots for 15 days for the GetUtterancesView "
                     "operation.\n",
    "children.md": "# Children\n\nBots that are directed at children under age 13 are subject to COPPA.\n",
}
QUESTION = "What does Amazon Lex do with the utterances of bots, and which bots are for children?"


@pytest.fixture
def model() -> Iterator[HallucinatingOpenAIServer]:
    with HallucinatingOpenAIServer(corrupt=(2,), gap=0.02) as server:
        yield server


@pytest.fixture
def make_served(make_app, tmp_path, model):
    stops = []

    def build(**settings):
        app = make_app(chat_model="openai", openai_base_url=model.base_url, k=3, **settings)
        for name, text in DOCS.items():
            write(tmp_path / "kb", name, text)
        app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
        url, stop = serve(create_app(app))
        stops.append(stop)
        return url

    yield build
    for stop in stops:
        stop()


def bare(events):
    """Verdict events as the answer lists its sentences (without the wire's ``type`` and ``id``)."""
    return [{k: v for k, v in e.items() if k not in ("type", "id")} for e in events]


def check_flags(sentences, model) -> None:
    """Exactly the corrupted sentence is unsupported, with a reason; the copied ones are supported."""
    assert len(model.corrupted) >= 1
    flagged = [s for s in sentences if s["verdict"] == "unsupported"]
    assert [s["text"].split(" [")[0] for s in flagged] == [c for c in model.corrupted[-1:]]
    assert all(s["reason"] for s in flagged)
    assert [s["verdict"] for s in sentences].count("supported") == len(sentences) - 1


def test_server_sent_events_carry_a_verdict_as_each_sentence_completes(make_served, model) -> None:
    url = make_served()
    events = sse_post(f"{url}/v1/query", {"question": QUESTION, "stream": True})
    kinds = [k for k, _ in events]
    verdicts = [d for k, d in events if k == "verdict"]
    assert len(verdicts) == 3
    # streamed: the first sentence is judged while the answer is still being written
    assert kinds.index("verdict") < max(i for i, k in enumerate(kinds) if k == "token")
    check_flags(verdicts, model)
    answer = events[-1][1]["answer"]
    assert answer["sentences"] == bare(verdicts) and answer["supported"] == round(2 / 3, 4)


def test_the_json_answer_lists_sentences_and_drop_hides_the_unsupported_one(make_served, model) -> None:
    body = httpx.post(f"{make_served()}/v1/query", json={"question": QUESTION}, timeout=60).json()
    check_flags(body["sentences"], model)
    assert model.corrupted[-1] in body["answer"]  # annotate: shown, and marked
    dropped = httpx.post(f"{make_served(verify='drop')}/v1/query", json={"question": QUESTION}, timeout=60).json()
    assert model.corrupted[-1] not in dropped["answer"] and dropped["supported"] == 1.0
    assert [s["shown"] for s in dropped["sentences"]].count(False) == 1


def test_refuse_says_the_sources_do_not_support_the_answer(make_served, model) -> None:
    url = make_served(verify="refuse", verify_threshold=0.9)
    body = httpx.post(f"{url}/v1/query", json={"question": QUESTION}, timeout=60).json()
    assert body["refused"] and body["answer"].startswith("I don't know: the sources found do not support")
    assert "Utterances" in body["answer"]  # what was found is listed


def test_the_openai_sdk_reads_verdicts_as_extension_fields(make_served, model) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{make_served()}/v1", api_key="unused")
    chunks = list(client.chat.completions.create(model="ragline", stream=True,
                                                 messages=[{"role": "user", "content": QUESTION}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    verdicts = [(c.model_extra or {})["verdict"] for c in chunks if (c.model_extra or {}).get("verdict")]
    check_flags(verdicts, model)
    assert model.corrupted[-1] in text  # a standard client still gets the plain text
    final = chunks[-1].model_extra or {}
    assert final["supported"] == round(2 / 3, 4) and len(final["sentences"]) == 3
    reply = client.chat.completions.create(model="ragline", messages=[{"role": "user", "content": QUESTION}])
    check_flags((reply.model_extra or {})["sentences"], model)


def test_the_websocket_sends_the_verdicts_with_the_turn_id(make_served, model) -> None:
    import websockets

    ws_url = make_served().replace("http://", "ws://") + "/v1/ws"

    async def talk() -> list[dict]:
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "ask", "id": "t7", "question": QUESTION}))
            turn: list[dict] = []
            while not turn or turn[-1]["type"] != "done":
                turn.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            return turn

    turn = asyncio.run(talk())
    verdicts = [m for m in turn if m["type"] == "verdict"]
    assert all(m["id"] == "t7" for m in turn) and len(verdicts) == 3
    check_flags(verdicts, model)


def test_the_answer_cache_keeps_the_verdicts(make_served, model) -> None:
    url = make_served(cache=True)
    first = httpx.post(f"{url}/v1/query", json={"question": QUESTION}, timeout=60).json()
    events = sse_post(f"{url}/v1/query", {"question": QUESTION, "stream": True})
    again = events[-1][1]["answer"]
    assert again["cache"] == "hit" and again["sentences"] == first["sentences"]
    assert bare([d for k, d in events if k == "verdict"]) == first["sentences"]  # replayed as events too


def test_the_cli_marks_the_doubtful_sentence_and_sums_up(make_app, tmp_path, model, monkeypatch) -> None:
    from click.testing import CliRunner

    from ragline.interfaces.cli import cli

    for name, text in DOCS.items():
        write(tmp_path / "kb", name, text)
    home = str(tmp_path / "clihome")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "ingest", str(tmp_path / "kb")]).exit_code == 0
    monkeypatch.setenv("RAGLINE_OPENAI_BASE_URL", model.base_url)
    result = runner.invoke(cli, ["--home", home, "ask", "--model", "openai", "--k", "3", QUESTION])
    assert result.exit_code == 0, result.output
    assert f"{model.corrupted[-1]} [2]. [unsupported]" in result.output  # marked where it stands
    assert "Checked: 2 of 3 sentences supported by their sources" in result.output
    assert "[unsupported] \"" in result.output.split("Checked:")[1]  # then listed with the reason
