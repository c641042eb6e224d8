"""Amazon Bedrock's Rerank API as the reranker (``RAGLINE_RERANKER=bedrock``): Amazon Rerank or Cohere Rerank.

One ``Rerank`` call (bedrock-agent-runtime) per question: the question as the text query, each passage (with its
title and heading) as an inline text source, ``numberOfResults`` = k. Texts are cut to the documented 32,000
characters and at most 1,000 sources are sent. Throttling and 5xx are retried by the one retry policy, within the
deadline; the model is ``RAGLINE_RERANK_MODEL``, an id (``amazon.rerank-v1:0``, ``cohere.rerank-v3-5:0``) or an ARN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragline.errors import ConfigError, ModelError, ModelUnavailableError
from ragline.providers.aws.clients import call_mapped, client, model_arn
from ragline.resilience import RetryPolicy, read_timeout
from ragline.types import Deadline, Hit

MAX_TEXT_CHARS = 32_000
MAX_SOURCES = 1_000
TRANSIENT = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException",
             "ServiceQuotaExceededException", "DependencyFailedException"}


class BedrockReranker:
    """Orders hits by a Bedrock reranking model; the hits' scores become its relevance scores."""

    def __init__(self, model: str, *, region: str | None = None, endpoint_url: str | None = None,
                 timeout: float = 10.0, policy: RetryPolicy | None = None) -> None:
        if not model:
            raise ConfigError("the bedrock reranker needs RAGLINE_RERANK_MODEL (amazon.rerank-v1:0, "
                              "cohere.rerank-v3-5:0, or a model ARN)")
        self.model_arn = model_arn(model, region, "the bedrock reranker")
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout
        self.policy = policy or RetryPolicy()

    @property
    def name(self) -> str:
        """``bedrock:MODEL``."""
        return f"bedrock:{self.model_arn.rsplit('/', 1)[-1]}"

    def request(self, question: str, hits: Sequence[Hit], k: int) -> dict[str, Any]:
        """The Rerank request."""
        return {
            "queries": [{"type": "TEXT", "textQuery": {"text": question[:MAX_TEXT_CHARS]}}],
            "sources": [{"type": "INLINE", "inlineDocumentSource": {
                "type": "TEXT", "textDocument": {"text": h.chunk.context_text()[:MAX_TEXT_CHARS]}}}
                for h in hits[:MAX_SOURCES]],
            "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                "numberOfResults": min(k, len(hits), MAX_SOURCES),
                "modelConfiguration": {"modelArn": self.model_arn}}},
        }

    def rerank(self, question: str, hits: Sequence[Hit], k: int, deadline: Deadline | None = None) -> list[Hit]:
        """The best ``k`` of ``hits``, best first, by the model's relevance score."""
        if not hits:
            return []
        request = self.request(question, hits, k)
        response = self.policy.run(lambda: self._call(request, deadline),
                                   transient=lambda err: isinstance(err, ModelUnavailableError), deadline=deadline)
        try:
            rows = sorted(((int(r["index"]), float(r["relevanceScore"])) for r in response["results"]),
                          key=lambda row: -row[1])
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"Bedrock Rerank ({self.name}): not a rerank response: {str(response)[:200]}") from err
        return [Hit(hits[i].chunk, score, (*hits[i].found_by, "rerank")) for i, score in rows[:k] if i < len(hits)]

    def _call(self, request: dict[str, Any], deadline: Deadline | None) -> Any:
        api = client("bedrock-agent-runtime", self._region, self._endpoint_url, read_timeout(self._timeout, deadline))
        return call_mapped(lambda: api.rerank(**request), f"Bedrock Rerank ({self.name})", transient=TRANSIENT,
                           permanent=ModelError)
