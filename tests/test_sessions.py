"""Long-lived sessions and who may open them (issue 20, items 3 and 6).

Before: after ``ragline keys revoke`` a WebSocket opened earlier kept answering, and a JWT that expired
mid-session kept working; malformed frames dropped the connection without a word; failed sign-ins were neither
logged nor slowed; a token whose ``sub`` was ``default`` read the CLI's tenant.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from ragline.interfaces.auth import create_key
from ragline.interfaces.http import create_app
from test_auth_jwt import ISSUER, keypair

from conftest import serve, write

QUESTION = {"type": "ask", "id": "t1", "question": "What is the orchid code?"}


@pytest.fixture()
def keyed(make_app, tmp_path) -> Iterator[tuple[str, Any]]:
    app = make_app(auth="api_key", ws_recheck_seconds=0.5, auth_failures_per_minute=5)
    url, stop = serve(create_app(app))
    yield url, app
    stop()


async def _turn(ws: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] not in ("done", "error"):
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    return events


async def _closed_after(ws: Any, started: float) -> tuple[list[dict[str, Any]], int, str, float]:
    """Read until the server closes: (events before the close, close code, reason, seconds since ``started``)."""
    events = []
    try:
        while True:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None
        return events, closed.rcvd.code, closed.rcvd.reason, time.monotonic() - started


def test_a_revoked_key_closes_its_open_websocket_within_seconds(keyed) -> None:
    url, app = keyed
    key_id, key = create_key(app.registry, "acme")

    async def talk() -> tuple[list[dict[str, Any]], tuple[list[dict[str, Any]], int, str, float]]:
        async with websockets.connect(url.replace("http", "ws") + f"/v1/ws?token={key}") as ws:
            await ws.send(json.dumps(QUESTION))
            first = await _turn(ws)  # the key works
            assert app.registry.key_revoke(key_id)  # what `ragline keys revoke` does
            return first, await _closed_after(ws, time.monotonic())

    first, (events, code, reason, seconds) = asyncio.run(talk())
    assert first[-1]["type"] == "done"
    assert (code, reason) == (4401, "the API key was revoked")
    assert events[-1]["type"] == "error" and events[-1]["error"] == "AuthError"
    assert seconds < 5
    assert httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {key}"}).status_code == 401


def test_an_expiring_token_closes_its_websocket_when_it_expires(make_app, tmp_path) -> None:
    private, public = keypair("k1")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    app = make_app(auth="jwt", jwt_jwks=str(tmp_path / "jwks.json"), jwt_issuer=ISSUER, ws_recheck_seconds=30)
    url, stop = serve(create_app(app))
    expires = time.time() + 3
    token = jwt.encode({"sub": "ana", "iss": ISSUER, "exp": expires}, private, algorithm="RS256",
                       headers={"kid": "k1"})

    async def talk() -> tuple[list[dict[str, Any]], int, str, float]:
        async with websockets.connect(url.replace("http", "ws") + f"/v1/ws?token={token}") as ws:
            await ws.send(json.dumps(QUESTION))
            assert (await _turn(ws))[-1]["type"] == "done"
            return await _closed_after(ws, time.monotonic())

    try:
        events, code, reason, _ = asyncio.run(talk())
    finally:
        stop()
    assert (code, reason) == (4401, "the token has expired")
    # closed at its expiry (not at the next 30 s check): within 5 s of it
    assert time.time() - expires < 5
    assert events[-1]["error"] == "AuthError"


def test_malformed_frames_get_an_error_event_and_the_connection_stays(keyed) -> None:
    url, app = keyed
    _, key = create_key(app.registry, "acme")

    async def talk() -> list[dict[str, Any]]:
        async with websockets.connect(url.replace("http", "ws") + f"/v1/ws?token={key}") as ws:
            replies = []
            for frame in ("not json", "[1, 2]", b"\x00\x01binary"):
                await ws.send(frame)
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(json.dumps(QUESTION))
            replies.append((await _turn(ws))[-1])
            return replies

    replies = asyncio.run(talk())
    assert [r["message"] for r in replies[:3]] == [
        "malformed message: the frame is not JSON",
        'malformed message: send one JSON object per frame, like {"type": "ask", "question": "..."}',
        "malformed message: send text frames of JSON, not binary",
    ]
    assert replies[3]["type"] == "done"  # the same connection still answers


def test_failed_sign_ins_are_logged_and_an_address_that_keeps_failing_waits(keyed, caplog) -> None:
    url, app = keyed
    _, key = create_key(app.registry, "acme")
    with caplog.at_level(logging.WARNING, logger="ragline.auth"):
        for n in range(5):
            r = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer rl_guess{n}"})
            assert r.status_code == 401
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ragline.auth"]
    assert len(logged) == 5 and logged[0] == {"stage": "auth", "refused": "unknown or revoked API key",
                                              "client": "127.0.0.1", "method": "api_key"}
    assert all("rl_guess" not in r.getMessage() for r in caplog.records)  # the credential is never logged
    r = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {key}"})  # even the right key waits
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["error"]["type"] == "RateLimitedError"


def test_a_token_cannot_name_the_clis_tenant(make_app, tmp_path) -> None:
    """The CLI ingests for tenant ``default``; a token whose ``sub`` is ``default`` is tenant ``jwt:default``."""
    private, public = keypair("k1")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    cli = make_app()
    from ragline.ingest.pipeline import expand_paths, source_items

    write(tmp_path / "kb", "secret.md", "# Secret\n\nThe orchid code is ORCHID-42.\n")
    cli.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    app = make_app(auth="jwt", jwt_jwks=str(tmp_path / "jwks.json"), jwt_issuer=ISSUER)
    url, stop = serve(create_app(app))
    token = jwt.encode({"sub": "default", "iss": ISSUER, "exp": time.time() + 60}, private, algorithm="RS256",
                       headers={"kid": "k1"})
    try:
        headers = {"authorization": f"Bearer {token}"}
        answer = httpx.post(f"{url}/v1/query", json={"question": "What is the orchid code?"}, headers=headers,
                            timeout=60).json()
        listed = httpx.get(f"{url}/v1/documents", headers=headers).json()
    finally:
        stop()
    assert answer["sources"] == [] and "ORCHID-42" not in answer["answer"]
    assert listed == {"documents": []}


def test_an_api_key_cannot_be_made_for_a_tokens_tenant(make_app) -> None:
    from ragline.errors import InputError

    with pytest.raises(InputError, match="a key's tenant is a plain name"):
        create_key(make_app().registry, "jwt:default")


def test_metrics_need_the_operators_token_and_health_says_nothing_inside(make_app) -> None:
    app = make_app(auth="api_key", metrics_token="scrape-me")
    _, key = create_key(app.registry, "acme")
    url, stop = serve(create_app(app))
    try:
        as_tenant = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {key}"})
        anonymous = httpx.get(f"{url}/metrics")
        scraper = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer scrape-me"})
        health = httpx.get(f"{url}/healthz").json()
    finally:
        stop()
    assert as_tenant.status_code == anonymous.status_code == 401  # counts of every tenant are not a tenant's
    assert "RAGLINE_METRICS_TOKEN" in as_tenant.json()["error"]["message"]
    assert scraper.status_code == 200 and "ragline_requests_total" in scraper.text
    assert health == {"status": "ok"}  # no home path, no model


def test_orphan_uploads_are_removed_at_start_up(make_app) -> None:
    """A crash while an upload was being saved left files no job will read; a failed job keeps its files."""
    from ragline.ingest.jobs import JobQueue

    app = make_app()
    queue = JobQueue(app)
    _, folder = queue.staging()  # saved, never queued: the process died mid-upload
    (folder / "half.pdf").write_bytes(b"%PDF-1.7 cut")
    failed, kept = queue.staging()
    (kept / "a.md").write_text("# A\n", encoding="utf-8")
    queue.submit(failed, "default", [{"name": "a.md", "path": str(kept / "a.md"), "size": 4}])
    app.registry.job_update(failed, status="failed", error="boom")
    (queue.uploads / "stray.tmp").write_bytes(b"x")
    assert queue.remove_orphans() == 2
    assert not folder.exists() and not (queue.uploads / "stray.tmp").exists()
    assert (kept / "a.md").exists()
