"""A loopback OpenAI-compatible model that hallucinates on purpose, for the verification tests.

It answers by copying the first sentence of each of the first three sources in the prompt, cited, and corrupts
the ones named in ``corrupt`` (1-based) the way ``ragline eval verify`` does: a "not" inserted, else a number
changed, else the sentence cited to another source. The corrupted sentences are kept in ``corrupted`` so a test
can check that exactly those were flagged. The answer streams word by word, so verdicts can be seen arriving
while the answer is still being written.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler

from ragline.eval.verify import change_number, negate
from ragline.providers.local.sentences import units
from ragline.testing.fakes import QuietServer

_SOURCE = re.compile(r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: |\Z)", re.MULTILINE | re.DOTALL)


def hallucinated_answer(prompt: str, corrupt: Sequence[int]) -> tuple[str, list[str]]:
    """The answer to a ragline prompt, and the sentences of it that were corrupted."""
    sources = [(int(n), text) for n, text in _SOURCE.findall(prompt)]
    parts: list[str] = []
    corrupted: list[str] = []
    for position, (number, text) in enumerate(sources[:3], start=1):
        found = [u.text for u in units(text) if len(u.text.split()) >= 6 and u.text.endswith(".")]
        if not found:
            continue
        sentence, cite = found[0].rstrip("."), number
        if position in corrupt:
            changed = negate(sentence) or change_number(sentence, random.Random(number))
            if changed is None and len(sources) > 1:
                cite = next(n for n, _ in sources if n != number)  # true, but cited to another source
            sentence = changed or sentence
            corrupted.append(sentence)
        parts.append(f"{sentence} [{cite}].")
    return (" ".join(parts) or "I don't know."), corrupted


class HallucinatingOpenAIServer:
    """``/v1/chat/completions`` (streamed) on 127.0.0.1; see the module's doc."""

    def __init__(self, corrupt: Sequence[int] = (2,), gap: float = 0.0) -> None:
        self.corrupt = tuple(corrupt)
        self.corrupted: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                """Stream one corrupted answer."""
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                prompt = str(body["messages"][-1]["content"])
                text, corrupted = hallucinated_answer(prompt, owner.corrupt)
                owner.corrupted.extend(corrupted)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                words = text.split(" ")
                for n, word in enumerate(words):
                    self._event({"choices": [{"delta": {"content": word if n == 0 else " " + word}}]})
                    time.sleep(gap)
                self._event({"choices": [], "usage": {"prompt_tokens": len(prompt.split()),
                                                      "completion_tokens": len(words)}})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, payload: dict[str, object]) -> None:
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

        self._server = QuietServer(Handler)

    @property
    def base_url(self) -> str:
        """The server's ``/v1`` base URL."""
        return f"{self._server.origin}/v1"

    def __enter__(self) -> HallucinatingOpenAIServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
