"""A loopback ``/rerank`` endpoint in both documented shapes, for the HTTP reranker's tests.

``cohere`` (Cohere, Jina, Infinity, llama-server): ``{"model"?, "query", "documents": [str], "top_n"?}`` →
``{"results": [{"index", "relevance_score"}]}``, best first, at most ``top_n``. ``tei`` (Text Embeddings
Inference): ``{"query", "texts": [str]}`` → ``[{"index", "score"}]``. A body of the wrong shape is answered 422,
as the servers do. Relevance is the share of the query's words a document holds (a stand-in for a
cross-encoder). ``script`` (one entry per request, the last repeats): ``ok`` or an HTTP status such as ``429``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from ragline.testing.fakes import Loopback, QuietServer, reply_json

_WORD = re.compile(r"\w+")


def _problems(body: Any, api: str) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return ["query must be a string"]
    field = "texts" if api == "tei" else "documents"
    docs = body.get(field)
    if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
        return [f"{field} must be a non-empty list of strings"]
    if api == "cohere" and "top_n" in body and not isinstance(body["top_n"], int):
        return ["top_n must be an integer"]
    return []


class FakeReranker(Loopback):
    """The endpoint on 127.0.0.1 (``with FakeReranker("cohere") as fake: fake.url``)."""

    def __init__(self, api: str = "cohere", script: Sequence[str] = ("ok",)) -> None:
        self.api = api
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                """Score the documents, or fail as the script says."""
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw or b"null")
                owner.requests.append({"path": self.path, "body": body})
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                if self.path != "/rerank":
                    return self._reply(404, {"error": "not found"})
                if step != "ok":
                    return self._reply(int(step), {"error": f"scripted {step}"})
                problems = _problems(body, owner.api)
                if problems:
                    return self._reply(422, {"error": "; ".join(problems)})
                return self._reply(200, owner.answer(body))

            def _reply(self, status: int, payload: Any) -> None:
                reply_json(self, status, payload)

        self._server = QuietServer(Handler)

    def answer(self, body: dict[str, Any]) -> Any:
        """The documented response for a valid request."""
        words = set(_WORD.findall(body["query"].lower()))
        docs = body["texts"] if self.api == "tei" else body["documents"]
        scores = [len(words & set(_WORD.findall(d.lower()))) / max(len(words), 1) for d in docs]
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        if self.api == "tei":
            return [{"index": i, "score": scores[i]} for i in order]
        top = order[: body.get("top_n", len(order))]
        return {"results": [{"index": i, "relevance_score": scores[i]} for i in top]}

