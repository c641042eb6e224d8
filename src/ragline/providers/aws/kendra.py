"""Amazon Kendra as the retriever: the Retrieve API (passages up to ~200 words), as in the first seed.

The ``_language_code`` attribute filter comes from the settings, or from the question's detected language
(py3langid, imported only here); a tenant attribute filter keeps tenants apart when the index holds several.
Kendra ranks by confidence buckets, not scores; each bucket maps to a score, minus a little per rank so the
order Kendra gave is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from ragline.errors import ModelUnavailableError, StoreError
from ragline.providers.aws.clients import call_mapped, client
from ragline.resilience import RetryPolicy, read_timeout
from ragline.types import Chunk, Hit

CONFIDENCE = {"VERY_HIGH": 1.0, "HIGH": 0.75, "MEDIUM": 0.5, "LOW": 0.25, "NOT_AVAILABLE": 0.1}
MAX_QUERY_CHARS = 1000  # Kendra's limit on QueryText
MIN_LANGUAGE_CONFIDENCE = 0.6
TRANSIENT = {"ThrottlingException", "InternalServerException", "ServiceUnavailableException"}


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str, fallback: str) -> str:
    """The ISO 639-1 code of the text's language, or ``fallback`` when the guess is weak (short texts)."""
    code, probability = _identifier().classify(text)
    return str(code) if probability >= MIN_LANGUAGE_CONFIDENCE else fallback


class KendraRetriever:
    """Retrieve from a Kendra index, filtered by language (and tenant, when the index carries it)."""

    name = "kendra"
    has_modes = False

    def __init__(self, index_id: str, *, language: str | None = None, default_language: str = "en",
                 tenant_attribute: str | None = None, region: str | None = None, endpoint_url: str | None = None,
                 timeout: float = 10.0, policy: RetryPolicy | None = None) -> None:
        if not index_id:
            raise StoreError("retriever 'kendra' needs RAGLINE_KENDRA_INDEX_ID")
        self.index_id = index_id
        self.language, self.default_language = language, default_language
        self.tenant_attribute = tenant_attribute
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout
        self.policy = policy or RetryPolicy()

    def request(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str,
                language: str) -> dict[str, Any]:
        """The Retrieve request for a question."""
        conditions = [("_language_code", language)]
        if self.tenant_attribute:
            conditions.append((self.tenant_attribute, tenant))
        conditions += [(key, value) for key, value in sorted(filters.items()) if key != "tenant"]
        equals = [{"EqualsTo": {"Key": key, "Value": {"StringValue": value}}} for key, value in conditions]
        return {
            "IndexId": self.index_id, "QueryText": question[:MAX_QUERY_CHARS], "PageSize": k,
            "AttributeFilter": equals[0] if len(equals) == 1 else {"AndAllFilters": equals},
        }

    def retrieve(self, question: str, *, k: int, mode: str = "hybrid", filters: Mapping[str, str],
                 tenant: str) -> list[Hit]:
        """The top ``k`` passages as hits (doc_id is the document's URI, or its Kendra id); Kendra has one mode."""
        language = self.language or detect_language(question, self.default_language)
        request = self.request(question, k=k, filters=filters, tenant=tenant, language=language)
        response = self.policy.run(lambda: self._call(request),
                                   transient=lambda err: isinstance(err, ModelUnavailableError))
        hits = []
        for rank, item in enumerate(response.get("ResultItems", [])[:k]):
            confidence = item.get("ScoreAttributes", {}).get("ScoreConfidence", "NOT_AVAILABLE")
            chunk = Chunk(
                id=item["Id"], doc_id=item.get("DocumentURI") or item["DocumentId"], ordinal=rank,
                text=item.get("Content", ""), title=item.get("DocumentTitle", ""), heading="", page=None,
                tenant=tenant, language=language, tags=(),
            )
            hits.append(Hit(chunk, CONFIDENCE.get(confidence, 0.1) - rank * 1e-3, ("kendra",)))
        return hits

    def _call(self, request: dict[str, Any]) -> Any:
        # an invalid request (botocore's ParamValidationError) is permanent: not retried as if Kendra were down
        api = client("kendra", self._region, self._endpoint_url, read_timeout(self._timeout))
        return call_mapped(lambda: api.retrieve(**request), f"Kendra index {self.index_id}: Retrieve",
                           transient=TRANSIENT)
