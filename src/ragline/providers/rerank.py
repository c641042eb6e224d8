"""A reranker behind any HTTP ``/rerank`` endpoint: Text Embeddings Inference, Infinity, llama-server, Cohere, Jina.

Two request shapes cover them: ``cohere`` (Cohere, Jina, Infinity, llama-server:
``{"model", "query", "documents", "top_n"}`` → ``{"results": [{"index", "relevance_score"}]}``) and ``tei`` (Text
Embeddings Inference: ``{"query", "texts"}`` → ``[{"index", "score"}]``). Throttling and 5xx are retried with the
one retry policy; the read timeout never exceeds what is left of the deadline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from ragline.errors import ConfigError, ModelError, ModelUnavailableError
from ragline.resilience import RetryPolicy, unavailable
from ragline.types import Deadline, Hit

APIS = ("cohere", "tei")


class HTTPReranker:
    """Orders hits by a cross-encoder served over HTTP; the hits' scores become its relevance scores."""

    def __init__(self, url: str, *, model: str = "", api: str = "cohere", api_key_env: str = "RERANK_API_KEY",
                 timeout: float = 10.0, policy: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url:
            raise ConfigError("the http reranker needs RAGLINE_RERANK_URL (the endpoint's base URL)")
        if api not in APIS:
            raise ConfigError(f"unknown rerank API {api!r}; valid: {', '.join(APIS)}")
        self.url = url.rstrip("/") + "/rerank"
        self.model, self.api, self.api_key_env = model, api, api_key_env
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self._client = httpx.Client(transport=transport)

    @property
    def name(self) -> str:
        """``http:MODEL@URL``."""
        return f"http:{self.model or self.api}@{self.url}"

    def rerank(self, question: str, hits: Sequence[Hit], k: int, deadline: Deadline | None = None) -> list[Hit]:
        """The best ``k`` of ``hits`` by the endpoint's relevance score."""
        if not hits:
            return []
        texts = [h.chunk.context_text() for h in hits]
        body: dict[str, Any] = {"query": question, "texts": texts} if self.api == "tei" else {
            "query": question, "documents": texts, "top_n": min(k, len(texts)), **({"model": self.model}
                                                                                if self.model else {})}
        scores = self.policy.run(lambda: self._call(body, deadline), transient=unavailable, deadline=deadline)
        order = sorted(scores, key=lambda i: -scores[i])[:k]
        return [Hit(hits[i].chunk, scores[i], (*hits[i].found_by, "rerank")) for i in order]

    def _call(self, body: dict[str, Any], deadline: Deadline | None) -> dict[int, float]:
        left = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline.remaining()))
        key = os.environ.get(self.api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = self._client.post(self.url, json=body, headers=headers, timeout=left)
        except httpx.TimeoutException as err:
            raise ModelUnavailableError(f"{self.url}: timed out") from err
        except httpx.TransportError as err:
            raise ModelUnavailableError(f"{self.url}: cannot connect ({err})") from err
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise ModelUnavailableError(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise ModelError(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        data = response.json()
        rows = data if isinstance(data, list) else data.get("results", [])
        try:
            return {int(r["index"]): float(r.get("relevance_score", r.get("score"))) for r in rows}
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{self.url}: not a rerank response: {str(data)[:200]}") from err
