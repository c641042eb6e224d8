"""Amazon Bedrock Guardrails' contextual grounding check as the verifier (``RAGLINE_VERIFIER=guardrail``).

Each claim is one ``ApplyGuardrail`` call: the cited sources are the ``grounding_source``, the question the
``query``, the sentence the ``guard_content``. The guardrail's own GROUNDING threshold decides (set it on the
guardrail: ``ContextualGroundingPolicyConfig`` in ``deploy/template.yaml``); RELEVANCE is reported in the reason
but does not decide, because one sentence of an answer need not answer the whole question. The documented
limits are kept: the grounding source is cut to 100,000 characters, the query to 1,000, the claim to 5,000.
Throttling is retried with full jitter within the retry budget; a guardrail without a contextual grounding
policy is a configuration error, said plainly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragline.errors import ConfigError, ModelUnavailableError
from ragline.providers.aws.clients import call_mapped, client
from ragline.resilience import RetryPolicy, read_timeout
from ragline.types import Source

MAX_GROUNDING_CHARS = 100_000
MAX_QUERY_CHARS = 1_000
MAX_CLAIM_CHARS = 5_000
TRANSIENT = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException",
             "ServiceQuotaExceededException"}


class GuardrailVerifier:
    """A Verifier calling ApplyGuardrail on a guardrail with a contextual grounding policy."""

    name = "guardrail"

    def __init__(self, guardrail_id: str, version: str = "DRAFT", *, region: str | None = None,
                 endpoint_url: str | None = None, timeout: float = 10.0, policy: RetryPolicy | None = None) -> None:
        if not guardrail_id:
            raise ConfigError("verifier 'guardrail' needs RAGLINE_GUARDRAIL_ID (a Bedrock guardrail id or ARN)")
        self.guardrail_id, self.version = guardrail_id, version
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout
        self.policy = policy or RetryPolicy()

    def describe(self) -> str:
        """The guardrail it calls."""
        return f"Bedrock guardrail {self.guardrail_id} version {self.version} (contextual grounding)"

    def request(self, question: str, claim: str, cited: Sequence[Source]) -> dict[str, Any]:
        """The ApplyGuardrail request for one claim."""
        grounding = "\n\n".join(f"[{s.number}] {s.title}\n{s.excerpt}" for s in cited)[:MAX_GROUNDING_CHARS]
        content = [{"text": {"text": grounding, "qualifiers": ["grounding_source"]}}]
        if question.strip():
            content.append({"text": {"text": question[:MAX_QUERY_CHARS], "qualifiers": ["query"]}})
        content.append({"text": {"text": claim[:MAX_CLAIM_CHARS], "qualifiers": ["guard_content"]}})
        return {"guardrailIdentifier": self.guardrail_id, "guardrailVersion": self.version, "source": "OUTPUT",
                "content": content}

    def check(self, question: str, claim: str, cited: Sequence[Source]) -> tuple[str, str]:
        """Supported unless the guardrail's grounding filter flags the claim."""
        request = self.request(question, claim, cited)
        response = self.policy.run(lambda: self._call(request),
                                   transient=lambda err: isinstance(err, ModelUnavailableError))
        filters = {f.get("type"): f for a in response.get("assessments", [])
                   for f in a.get("contextualGroundingPolicy", {}).get("filters", [])}
        grounding = filters.get("GROUNDING")
        if grounding is None:
            raise ConfigError(f"the guardrail {self.guardrail_id} returned no contextual grounding assessment: "
                              "enable its contextual grounding check (GROUNDING filter)")
        if grounding.get("action") == "BLOCKED" or grounding.get("detected"):
            relevance = filters.get("RELEVANCE")
            extra = f", relevance {relevance.get('score', 0):.2f}" if relevance else ""
            labels = ", ".join(f"[{s.number}]" for s in cited)
            return "unsupported", (f"the guardrail finds it not grounded in {labels}: grounding score "
                                   f"{grounding.get('score', 0):.2f} under {grounding.get('threshold', 0):.2f}{extra}")
        return "supported", ""

    def _call(self, request: dict[str, Any]) -> Any:
        api = client("bedrock-runtime", self._region, self._endpoint_url, read_timeout(self._timeout))
        return call_mapped(lambda: api.apply_guardrail(**request), f"guardrail {self.guardrail_id}: ApplyGuardrail",
                           transient=TRANSIENT)
