"""Bedrock Guardrails' contextual grounding check, as the loopback Bedrock (``testing/aws.py``) answers it.

The request is checked as Bedrock checks it (one ``grounding_source``, one ``guard_content``, at most one
``query``, each within its documented limit: 100,000, 5,000 and 1,000 characters); botocore has already checked
the shapes on the client side. The scores are word overlap, not Bedrock's model: grounding is the share of the
claim's words found in the grounding source, relevance their share in the query. What this proves: ragline sends
a valid ApplyGuardrail request and reads the assessment as Bedrock returns it. What it does not: how Bedrock's own
model scores a given sentence.
"""

from __future__ import annotations

import re
from typing import Any

GUARDRAIL_LIMITS = {"grounding_source": 100_000, "query": 1_000, "guard_content": 5_000}
_WORD = re.compile(r"\w+")


def guardrail_problems(body: dict[str, Any]) -> list[str]:
    """What Bedrock refuses in an ApplyGuardrail request with a contextual grounding check."""
    problems = []
    if body.get("source") not in ("INPUT", "OUTPUT"):
        problems.append("source must be INPUT or OUTPUT")
    counts = dict.fromkeys(GUARDRAIL_LIMITS, 0)
    for block in body.get("content", []):
        text = block.get("text", {})
        for qualifier in text.get("qualifiers", []):
            counts[qualifier] = counts.get(qualifier, 0) + 1
            if len(text.get("text", "")) > GUARDRAIL_LIMITS.get(qualifier, 0):
                problems.append(f"{qualifier} is over {GUARDRAIL_LIMITS.get(qualifier, 0):,} characters")
    if counts["grounding_source"] != 1 or counts["guard_content"] != 1 or counts["query"] > 1:
        problems.append("contextual grounding needs one grounding_source, one guard_content and at most one query")
    return problems


def assess(body: dict[str, Any], grounding_threshold: float, relevance_threshold: float) -> dict[str, Any]:
    """The ApplyGuardrail response for a valid request."""
    parts = {q: block["text"]["text"] for block in body["content"] for q in block["text"].get("qualifiers", [])}
    claim = set(_WORD.findall(parts["guard_content"].lower()))
    source = set(_WORD.findall(parts["grounding_source"].lower()))
    query = set(_WORD.findall(parts.get("query", "").lower()))
    grounding = len(claim & source) / max(len(claim), 1)
    relevance = len(claim & query) / max(len(claim), 1) if query else 1.0
    filters = []
    for kind, score, threshold in (("GROUNDING", grounding, grounding_threshold),
                                   ("RELEVANCE", relevance, relevance_threshold)):
        blocked = score < threshold
        filters.append({"type": kind, "threshold": threshold, "score": round(score, 2),
                        "action": "BLOCKED" if blocked else "NONE", "detected": blocked})
    intervened = any(f["detected"] for f in filters)
    return {"usage": {"contextualGroundingPolicyUnits": 1}, "action": "GUARDRAIL_INTERVENED" if intervened else "NONE",
            "outputs": [{"text": "Sorry, the model cannot answer this."}] if intervened else [],
            "assessments": [{"contextualGroundingPolicy": {"filters": filters}}]}
