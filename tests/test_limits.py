"""Limits enforced while the body streams (issue 20, item 2) and the API's own contract (item 5).

Before: a chunked upload of 6 x 95 MB was accepted past the 512 MiB limit and saved; with a Content-Length the
same request was refused only after the whole body had been written to /tmp; a 300 MB JSON body was accepted.
Now each is cut off with 413 as soon as it passes its limit, and less than the limit plus one chunk is ever on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ragline.interfaces.http import create_app

from conftest import serve

LIMIT = 1024 * 1024  # the upload limit of these tests: 1 MiB per request
CHUNK = 64 * 1024


@pytest.fixture()
def server(make_app, tmp_path) -> Iterator[tuple[str, Path]]:
    app = make_app(max_upload_bytes=LIMIT, max_file_bytes=LIMIT // 2, max_body_bytes=256 * 1024)
    url, stop = serve(create_app(app))
    yield url, tmp_path / "home" / "uploads"
    stop()


def _on_disk(folder: Path) -> int:
    """Bytes under ``folder``, read while the server may be deleting it (a vanished file or folder counts 0)."""
    total = 0
    for root, _, files in os.walk(folder):  # os.walk skips a folder that vanishes under it
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def _chunked(url: str, path: str, head: bytes, filler: bytes, total: int, content_type: str,
             uploads: Path | None = None) -> tuple[int, dict[str, Any], int]:
    """Send a body with ``Transfer-Encoding: chunked`` (no declared size) until the server answers.

    Returns (status, JSON body, most bytes seen on disk under ``uploads`` while sending).
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:  # closed even on a failure
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sent, most = 0, 0
        body = head
        try:
            while sent < total:
                piece = body or filler
                body = b""
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
                if uploads is not None:
                    most = max(most, _on_disk(uploads))
                if select.select([sock], [], [], 0.01)[0]:
                    break  # the server has answered (and stopped reading)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _length(reply):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head_part, _, payload = reply.partition(b"\r\n\r\n")
    return int(head_part.split()[1]), json.loads(payload[:_length(reply)]), most


def _length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def _multipart_head(name: str) -> bytes:
    return (b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name.encode() +
            b"\"\r\nContent-Type: text/plain\r\n\r\n")


def test_a_chunked_upload_past_the_limit_is_cut_off_with_413(server) -> None:
    url, uploads = server
    # several files, each under the per-file limit, together past the request limit (as 6 x 95 MB was)
    head = b"".join(_multipart_head(f"part{n}.txt") + b"x" * (LIMIT // 3) + b"\r\n" for n in range(2))
    status, body, most = _chunked(url, "/v1/documents", head + _multipart_head("part2.txt"), b"y" * CHUNK,
                                  LIMIT * 6, "multipart/form-data; boundary=XyZ", uploads)
    assert status == 413 and body["error"]["type"] == "TooLargeError"
    assert "the upload is over the 1.0 MiB limit (RAGLINE_MAX_UPLOAD_BYTES)" in body["error"]["message"]
    assert most < LIMIT + CHUNK  # never more than the limit plus one chunk on disk
    time.sleep(0.2)
    assert _on_disk(uploads) == 0  # and nothing of the refused upload stays


def test_a_declared_size_over_the_limit_is_refused_before_the_body_is_read(server) -> None:
    url, uploads = server
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/documents HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {600 * LIMIT}\r\n"
                     "Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n".encode())
        reply = b""  # answered at once, and the connection closed: not one byte of the body was sent
        while data := sock.recv(65536):
            reply += data
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"type": "TooLargeError"' in reply and b"(600.0 MiB) is over the 1.0 MiB limit" in reply
    assert _on_disk(uploads) == 0


def test_one_file_past_its_own_limit_is_refused_as_it_arrives(server) -> None:
    url, uploads = server
    r = httpx.post(f"{url}/v1/documents", files=[("files", ("big.txt", b"z" * (LIMIT // 2 + 1)))], timeout=30)
    assert r.status_code == 413
    assert r.json()["error"]["message"] == "big.txt is over the 512.0 KiB limit per file (RAGLINE_MAX_FILE_BYTES)"
    assert _on_disk(uploads) == 0


def test_a_json_body_past_its_limit_is_413_chunked_or_declared(server) -> None:
    url, _ = server
    status, body, _ = _chunked(url, "/v1/query", b'{"question": "', b"a" * CHUNK, 2 * LIMIT, "application/json")
    assert status == 413 and "the request body is over the 256.0 KiB limit (RAGLINE_MAX_BODY_BYTES)" in \
        body["error"]["message"]
    r = httpx.post(f"{url}/v1/query", content=b'{"question": "' + b"a" * (300 * 1024) + b'"}',
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["type"] == "TooLargeError"


def test_a_file_name_without_a_base_name_is_refused_at_upload(server) -> None:
    url, uploads = server
    r = httpx.post(f"{url}/v1/documents", files=[("files", (".md", b"# Notes\n\nSome text.\n"))], timeout=30)
    assert r.status_code == 415
    assert r.json()["error"]["message"] == "'.md': a file name needs a base name before its extension"
    assert _on_disk(uploads) == 0


def test_uploads_that_are_not_multipart_or_cut_short_are_422(server) -> None:
    url, _ = server
    r = httpx.post(f"{url}/v1/documents", json={"files": ["a.md"]}, timeout=30)
    assert r.status_code == 422 and "multipart/form-data in the field 'files'" in r.json()["error"]["message"]
    cut = _multipart_head("a.txt") + b"some text but no closing boundary"
    r = httpx.post(f"{url}/v1/documents", content=cut, timeout=30,
                   headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 422 and "cut short" in r.json()["error"]["message"]


def test_a_jsonl_job_counts_files_and_documents_apart(server) -> None:
    url, _ = server
    corpus = "".join(json.dumps({"_id": f"doc{n}", "title": f"Doc {n}", "text": f"Document number {n} says {n}."})
                     + "\n" for n in range(12))
    r = httpx.post(f"{url}/v1/documents", files=[("files", ("corpus.jsonl", corpus.encode()))], timeout=30)
    assert r.status_code == 202
    deadline = time.monotonic() + 60
    while (job := httpx.get(url + r.json()["status_url"], timeout=10).json())["status"] != "done":
        assert time.monotonic() < deadline and job["status"] != "failed", job
        time.sleep(0.2)
    progress = job["progress"]
    assert (progress["files_done"], progress["files_total"], progress["documents_done"]) == (1, 1, 12)


def test_starlettes_own_refusals_use_the_documented_error_shape(server) -> None:
    url, _ = server
    missing = httpx.get(f"{url}/v1/nothing-here", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    wrong = httpx.put(f"{url}/v1/query", json={}, timeout=10)
    assert wrong.status_code == 405 and wrong.json()["error"]["message"] == "Method Not Allowed"
    # every method the path takes, though GET and POST /v1/documents are two routes (Starlette named one)
    assert httpx.put(f"{url}/v1/documents", timeout=10).headers["allow"] == "GET, POST"
    assert httpx.post(f"{url}/v1/documents/a.md", timeout=10).headers["allow"] == "DELETE, GET"


def test_json_types_are_the_schemas_booleans_are_booleans(server) -> None:
    url, _ = server
    for field in ("use_cache", "stream"):
        r = httpx.post(f"{url}/v1/query", json={"question": "What is Lex?", field: 0}, timeout=30)
        assert r.status_code == 422 and f"body.{field}: Input should be a valid boolean" in r.json()["error"]["message"]
    for field, value in (("k", True), ("deadline", True), ("k", "5"), ("max_tokens", 2.5)):
        r = httpx.post(f"{url}/v1/query", json={"question": "What is Lex?", field: value}, timeout=30)
        assert r.status_code == 422 and f"body.{field}" in r.json()["error"]["message"], (field, value)
    chat = {"model": "ragline", "messages": [{"role": "user", "content": "What is Lex?"}],
            "max_completion_tokens": True}
    assert httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=30).status_code == 422
    ok = httpx.post(f"{url}/v1/query", json={"question": "What is Lex?", "deadline": 30, "k": 3.0}, timeout=30)
    assert ok.status_code == 200  # an integer is a number, and 3.0 is an integer (as JSON Schema says)


def test_every_route_declares_every_status_it_returns_with_the_error_schema(server) -> None:
    spec = httpx.get(f"{server[0]}/openapi.json", timeout=10).json()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    expected = {("/v1/query", "post"): {"400", "401", "413", "422", "429", "502", "503"},
                ("/v1/documents", "post"): {"401", "413", "415", "422", "429"},
                ("/v1/documents/{doc_id}", "delete"): {"401", "404", "422", "429"},
                ("/v1/jobs/{job_id}", "get"): {"401", "404", "422", "429"}}
    for (path, method), codes in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert codes <= set(responses), (path, method, set(responses))
        for code in codes:
            assert responses[code]["content"]["application/json"]["schema"] == error_ref, (path, code)
    query = spec["components"]["schemas"]["QueryRequest"]["properties"]
    assert query["max_tokens"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 8192}
    assert query["k"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 100}
    images = spec["components"]["schemas"]["QueryRequest"]["properties"]["images"]
    assert images["maxItems"] == 0 and "does not take images" in images["description"]  # the extractive model
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert chat["model"]["enum"] == ["ragline", "ragline-extractive"]
    assert chat["messages"]["contains"]["properties"]["role"] == {"const": "user"}
    upload = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["files"]["type"] == "array"


def test_slow_headers_are_cut_off_and_websockets_are_not(make_app) -> None:
    """Slowloris: 20 sockets sending their headers a line at a time, and 5 that send nothing, are closed after
    the header deadline (1 s here); a WebSocket open for longer is not affected."""
    import asyncio

    import websockets

    app = make_app(header_timeout=1.0)
    url, stop = serve(create_app(app))
    parts = urlsplit(url)
    try:
        slow = [socket.create_connection((parts.hostname, parts.port), timeout=5) for _ in range(25)]
        for sock in slow[:20]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        open_ = set(range(25))
        while open_ and time.monotonic() - started < 4:
            for n in list(open_):
                sock = slow[n]
                if n < 20:
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")  # never the blank line that ends the headers
                    except OSError:
                        open_.discard(n)
                        continue
                if select.select([sock], [], [], 0)[0] and sock.recv(1024) == b"":
                    open_.discard(n)
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        for sock in slow:
            sock.close()

        async def long_socket() -> str:
            async with websockets.connect(url.replace("http", "ws") + "/v1/ws") as ws:
                await asyncio.sleep(2.5)  # past the header deadline
                await ws.send(json.dumps({"type": "ask", "id": "a", "question": "What is Lex?"}))
                while (event := json.loads(await asyncio.wait_for(ws.recv(), 60)))["type"] not in ("done", "error"):
                    pass
                return str(event["type"])

        assert asyncio.run(long_socket()) == "done"
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # a normal client is served
    finally:
        stop()
    assert not open_, f"{len(open_)} slow sockets still open after {elapsed:.1f} s"
    assert elapsed < 3
