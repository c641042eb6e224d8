"""Bedrock's Rerank API (bedrock-agent-runtime ``POST /rerank``), as the loopback Bedrock (``testing/aws.py``) answers.

The request is checked as the service checks it beyond botocore's shapes (one text query; inline text sources; a
model ARN; ``numberOfResults`` no more than the sources); relevance is the share of the query's words a source
holds (a stand-in for the model). What this proves: ragline sends a valid Rerank request and reads the response
as Bedrock returns it, best first. What it does not: how a Bedrock reranking model scores a passage.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"\w+")


def rerank_problems(body: dict[str, Any]) -> list[str]:
    """What Bedrock refuses in a Rerank request."""
    problems = []
    queries = body.get("queries", [])
    if len(queries) != 1 or queries[0].get("type") != "TEXT":
        problems.append("queries must hold exactly one TEXT query")
    sources = body.get("sources", [])
    if not 1 <= len(sources) <= 1000:
        problems.append("sources must hold 1 to 1000 documents")
    config = body.get("rerankingConfiguration", {}).get("bedrockRerankingConfiguration", {})
    arn = config.get("modelConfiguration", {}).get("modelArn", "")
    if not re.fullmatch(r"arn:aws[\w-]*:bedrock:[\w-]+::foundation-model/[\w.:-]+", arn):
        problems.append(f"modelArn is not a foundation-model ARN: {arn!r}")
    if config.get("numberOfResults", 1) > len(sources):
        problems.append("numberOfResults is more than the sources")
    return problems


def rerank_response(body: dict[str, Any]) -> dict[str, Any]:
    """The Rerank response for a valid request: the best ``numberOfResults`` sources, best first."""
    words = set(_WORD.findall(body["queries"][0]["textQuery"]["text"].lower()))
    texts = [s["inlineDocumentSource"]["textDocument"]["text"] for s in body["sources"]]
    scores = [len(words & set(_WORD.findall(t.lower()))) / max(len(words), 1) for t in texts]
    wanted = body["rerankingConfiguration"]["bedrockRerankingConfiguration"].get("numberOfResults", len(texts))
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:wanted]
    return {"results": [{"index": i, "relevanceScore": scores[i]} for i in order]}
