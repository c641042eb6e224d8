"""Deterministic fakes for unit tests of logic; they register like real providers (``fake``)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Generator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import numpy as np

from ragline.types import Deadline, Message, ModelEvent, Token, Usage, UsageEvent, Vectors

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Hashed bag of words: texts sharing words are close; no model, no download, same output every run."""

    name = "fake-bag-of-words"
    tokenizer = None

    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension

    def count_tokens(self, text: str) -> int:
        """Words in the text."""
        return len(_WORD.findall(text))

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """One normalised vector per text."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.clip(norms, 1e-12, None), dtype=np.float32)


class EchoChatModel:
    """Answers with the first sentence of source [1], cited; says "I don't know" without sources."""

    name = "echo"
    context_tokens = 4096
    accepts_images = False

    def describe(self) -> str:
        """Always answers."""
        return "echoes source [1]"

    def close(self) -> None:
        """Nothing to free."""

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Yield the answer word by word."""
        match = re.search(r"^\[1\] [^\n]*\n([^\n]+)", messages[-1].content, re.MULTILINE)
        text = f"{match.group(1).split('. ')[0].rstrip('.')} [1]." if match else "I don't know."
        words = text.split(" ")[:max_tokens]
        for n, word in enumerate(words):
            yield Token(word if n == 0 else " " + word)
        yield UsageEvent(Usage(sum(len(m.content.split()) for m in messages), len(words)))


def reply_json(handler: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    """Answer a loopback request with a JSON body."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free loopback port, run in a daemon thread.

    Clients that hang up on a stalled or delayed answer are expected here: no traceback on stderr.
    """

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore connection errors from clients that gave up; report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class QuietHandler(BaseHTTPRequestHandler):
    """A loopback request handler: HTTP/1.1, no access log, JSON bodies read in one call."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def read_json(self) -> Any:
        """The request's JSON body."""
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))


def begin_event_stream(handler: BaseHTTPRequestHandler) -> None:
    """Start a 200 ``text/event-stream`` answer (the connection closes at its end)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()


def send_event(handler: BaseHTTPRequestHandler, payload: dict[str, object]) -> None:
    """One ``data:`` event of an OpenAI-style stream, flushed at once."""
    handler.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
    handler.wfile.flush()


class Loopback:
    """What every loopback server shares: its URL, and start/stop as a context (``with Fake() as fake:``)."""

    _server: QuietServer

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._server.origin

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class LoopbackOpenAI(Loopback):
    """A loopback OpenAI-compatible server: clients take its ``/v1`` base URL."""

    @property
    def base_url(self) -> str:
        """The server's ``/v1`` base URL."""
        return f"{self._server.origin}/v1"


class FaultyOpenAIServer(LoopbackOpenAI):
    """An OpenAI-compatible chat server on 127.0.0.1 that misbehaves on command, for resilience tests.

    ``script`` is consumed one entry per request (the last entry repeats): ``ok``; an HTTP status such as
    ``429``, ``500`` or ``400``; ``delay:S`` (wait S seconds before answering); ``drop:N`` (send N tokens, then
    cut the connection); ``stall:N:S`` (send N tokens, then go silent for S seconds); ``slow:N:S`` (send N tokens,
    S seconds apart). Requests are recorded with their arrival time; answers the client abandoned are recorded in
    ``abandoned`` as (time, tokens sent).
    """

    answer = ("Amazon", " Lex", " builds", " chatbots", " [1].")

    def __init__(self, script: Sequence[str] = ("ok",)) -> None:
        self.script = list(script)
        self.requests: list[tuple[float, dict[str, object]]] = []
        self.abandoned: list[tuple[float, int]] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                """Answer one chat completion as the script says."""
                body = self.read_json()
                owner.requests.append((time.monotonic(), body))
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                kind, _, arg = step.partition(":")
                if kind.isdigit():
                    data = json.dumps({"error": {"message": f"injected {kind}"}}).encode()
                    self.send_response(int(kind))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if kind == "delay":
                    time.sleep(float(arg))
                if kind == "slow":
                    self._slow(int(arg.split(":")[0]), float(arg.split(":")[1]))
                    return
                self._begin_stream()
                limit = int(arg.split(":")[0]) if kind in ("drop", "stall") else len(owner.answer)
                for piece in owner.answer[:limit]:
                    self._event({"choices": [{"delta": {"content": piece}}]})
                if kind == "drop":
                    self.wfile.write(b"data: {\"choices\": [{\"delta\": {\"content\"")  # cut mid-event
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if kind == "stall":
                    time.sleep(float(arg.split(":")[1]))
                self._event({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": limit}})
                self.wfile.write(b"data: [DONE]\n\n")

            def _begin_stream(self) -> None:
                begin_event_stream(self)

            def _slow(self, count: int, gap: float) -> None:
                self._begin_stream()
                for n in range(count):
                    try:
                        self._event({"choices": [{"delta": {"content": f" t{n}"}}]})
                    except ConnectionError:
                        owner.abandoned.append((time.monotonic(), n))
                        return
                    time.sleep(gap)
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, payload: dict[str, object]) -> None:
                send_event(self, payload)

        self._server = QuietServer(Handler)
