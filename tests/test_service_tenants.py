"""Uploads through the durable queue, API-key and JWT auth, tenant isolation on every interface, WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from ragline.ingest.jobs import JobQueue
from ragline.interfaces.auth import create_key
from ragline.interfaces.http import create_app

from conftest import serve

ALPHA = b"# Alpha handbook\n\nThe alpha team's secret launch code is ORCHID-42.\n"
BETA = b"# Beta handbook\n\nThe beta team meets every Tuesday in room 7.\n"


def wait_job(url: str, job_id: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def upload(url: str, headers: dict[str, str], *files: tuple[str, bytes]) -> httpx.Response:
    return httpx.post(f"{url}/v1/documents", headers=headers,
                      files=[("files", (name, data)) for name, data in files], timeout=60)


@pytest.fixture
def keyed(make_app) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    app = make_app(auth="api_key", cache=True, max_file_bytes=2000)
    _, key_a = create_key(app.registry, "alpha")
    _, key_b = create_key(app.registry, "beta")
    url, stop = serve(create_app(app))
    yield url, {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}
    stop()


def test_upload_runs_through_the_queue_and_tenants_are_isolated(keyed) -> None:
    url, alpha, beta = keyed
    accepted = upload(url, alpha, ("alpha.md", ALPHA), ("empty.txt", b""))
    assert accepted.status_code == 202
    job = wait_job(url, accepted.json()["job_id"], alpha)
    assert job["status"] == "done"
    assert job["progress"]["added"] == 1 and job["progress"]["failed"][0]["reason"] == "empty.txt: empty file"
    assert wait_job(url, upload(url, beta, ("beta.md", BETA)).json()["job_id"], beta)["status"] == "done"

    # REST: each tenant lists, fetches and deletes only its own documents
    assert [d["doc_id"] for d in httpx.get(f"{url}/v1/documents", headers=alpha).json()["documents"]] == [
        "alpha.md", "empty.txt"]
    assert httpx.get(f"{url}/v1/documents/alpha.md", headers=beta).status_code == 404
    assert httpx.delete(f"{url}/v1/documents/alpha.md", headers=beta).status_code == 404
    assert httpx.get(f"{url}/v1/jobs/{accepted.json()['job_id']}", headers=beta).status_code == 404
    # query: beta can neither retrieve nor cite alpha's text, nor get alpha's cached answer
    question = {"question": "What is the secret launch code?"}
    assert "ORCHID-42" in httpx.post(f"{url}/v1/query", json=question, headers=alpha, timeout=60).text
    as_beta = httpx.post(f"{url}/v1/query", json=question, headers=beta, timeout=60).json()
    assert "ORCHID" not in json.dumps(as_beta) and as_beta["cache"] == "miss"
    sse = httpx.post(f"{url}/v1/query", json={**question, "stream": True}, headers=beta, timeout=60).text
    assert "ORCHID" not in sse and "event: done" in sse
    chat = httpx.post(f"{url}/v1/chat/completions", headers=beta, timeout=60, json={
        "model": "ragline", "messages": [{"role": "user", "content": question["question"]}]}).json()
    assert "ORCHID" not in json.dumps(chat)


def test_missing_or_wrong_credentials_are_401(keyed) -> None:
    url, _, _ = keyed
    for headers in ({}, {"Authorization": "Bearer rl_not-a-key"}, {"Authorization": "Basic abc"}):
        r = httpx.post(f"{url}/v1/query", json={"question": "hi"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["type"] == "AuthError"
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_oversize_and_unsupported_uploads(keyed) -> None:
    url, alpha, _ = keyed
    big = upload(url, alpha, ("big.txt", b"x" * 5000))
    assert big.status_code == 413 and "big.txt is over the 2.0 KiB limit per file" in big.json()["error"]["message"]
    exe = upload(url, alpha, ("tool.exe", b"MZ"))
    assert exe.status_code == 415 and "unsupported file type" in exe.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/documents", headers=alpha).json()["documents"] == []


def test_websocket_chat_with_history_and_progress(keyed) -> None:
    import websockets

    url, alpha, _ = keyed
    ws_url = url.replace("http://", "ws://") + "/v1/ws"
    token = alpha["Authorization"].split()[1]

    async def talk() -> tuple[list[dict], list[dict]]:
        async with websockets.connect(f"{ws_url}?token={token}") as ws:
            job = upload(url, alpha, ("alpha.md", ALPHA)).json()["job_id"]
            await ws.send(json.dumps({"type": "subscribe", "job_id": job}))
            progress: list[dict] = []
            while not progress or progress[-1]["status"] != "done":
                progress.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            await ws.send(json.dumps({"type": "ask", "id": "t1", "conversation_id": "c1",
                                      "question": "What is the secret launch code?"}))
            turn: list[dict] = []
            while not turn or turn[-1]["type"] != "done":
                turn.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            return progress, turn

    progress, turn = asyncio.run(talk())
    assert progress[-1]["status"] == "done" and progress[-1]["added"] == 1
    assert turn[0]["type"] == "sources" and all(m["id"] == "t1" for m in turn)
    assert "ORCHID-42" in "".join(m.get("text", "") for m in turn if m["type"] == "token")

    async def rejected() -> tuple[int, bytes]:
        try:
            async with websockets.connect(f"{ws_url}?token=rl_wrong") as ws:
                await ws.recv()
        except websockets.InvalidStatus as err:
            return err.response.status_code, err.response.body or b""
        return 0, b""

    status, body = asyncio.run(rejected())  # refused at the handshake as the README says: 401, the error body
    assert status == 401 and json.loads(body)["error"] == {"type": "AuthError", "message": "unknown or revoked API key"}


def test_a_job_left_running_by_a_crash_resumes(make_app, tmp_path) -> None:
    app = make_app()
    queue = JobQueue(app)
    job_id, folder = queue.staging()
    (folder / "a.md").write_bytes(ALPHA)
    queue.submit(job_id, "default", [{"name": "a.md", "path": str(folder / "a.md"), "size": len(ALPHA)}])
    assert app.registry.job_claim() is not None  # a worker took it, then the process died
    restarted = JobQueue(make_app(parts={"registry": app.registry, "store": app.store}))
    assert app.registry.jobs_requeue_running(3) == 1
    assert restarted.run_one()
    job = app.registry.job_get("default", job_id)
    assert job["status"] == "done" and job["attempts"] == 2
    assert app.registry.get("default", "a.md").status == "ready"


def test_a_worker_crash_mid_document_keeps_the_old_version_and_the_job_retryable(make_app) -> None:
    app = make_app()
    url, stop = serve(create_app(app))
    try:
        first = upload(url, {}, ("policy.md", b"# Policy\n\nRetention is seven days.\n")).json()["job_id"]
        assert wait_job(url, first, {})["status"] == "done"
        real = app.embedder

        class Crashing:
            name, dimension = real.name, real.dimension

            def count_tokens(self, text: str) -> int:
                return real.count_tokens(text)

            def embed_batch(self, texts):
                raise MemoryError("killed while embedding")

        app.ingestor.embedder = Crashing()
        second = upload(url, {}, ("policy.md", b"# Policy\n\nRetention is thirty days.\n")).json()["job_id"]
        failed = wait_job(url, second, {})
        assert failed["status"] == "failed" and "killed while embedding" in failed["error"]
        answer = httpx.post(f"{url}/v1/query", json={"question": "How long is retention?"}, timeout=60).json()
        assert "seven days" in answer["answer"]  # the previous version is intact
        assert httpx.get(f"{url}/metrics").text.count("ragline_ingest_queue_depth 0.0") == 1
        app.ingestor.embedder = real
        assert httpx.post(f"{url}/v1/jobs/{second}/retry").status_code == 202
        assert wait_job(url, second, {})["status"] == "done"
        answer = httpx.post(f"{url}/v1/query", json={"question": "How long is retention?"}, timeout=60).json()
        assert "thirty days" in answer["answer"] and "seven" not in answer["answer"]
    finally:
        stop()


def test_another_tenant_cannot_watch_progress_over_the_websocket(keyed) -> None:
    import websockets

    url, alpha, beta = keyed
    ws_url = url.replace("http://", "ws://") + "/v1/ws"

    async def watch() -> list[dict]:
        async with websockets.connect(f"{ws_url}?token={beta['Authorization'].split()[1]}") as ws:
            job = upload(url, alpha, ("alpha.md", ALPHA)).json()["job_id"]
            await ws.send(json.dumps({"type": "subscribe", "job_id": job}))
            wait_job(url, job, alpha)
            seen = []
            try:
                while True:
                    seen.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
            except TimeoutError:
                return seen

    assert asyncio.run(watch()) == []
