"""Amazon Bedrock Knowledge Bases: as a retriever (Retrieve) or as a one-call answerer (RetrieveAndGenerate).

As a retriever, the knowledge base finds the passages and ragline does the rest: its prompt, model, citation
check, cache and streaming. As an answerer, one RetrieveAndGenerateStream call (or RetrieveAndGenerate) does
both; the streamed text reaches the caller as it comes, and the knowledge base's citations (a span of the answer
and the references that support it) become ragline's numbered sources and ``[n]`` markers at the end of each span.

A metadata filter carries ragline's filters, and the tenant when ``knowledge_base_tenant_attribute`` names the
metadata key that holds it (otherwise the knowledge base serves one tenant). ``source=PREFIX`` filters on the
source URI that Bedrock records for every chunk (``x-amz-bedrock-kb-source-uri``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator, Iterator, Mapping
from typing import Any

from ragline.errors import ConfigError, ModelUnavailableError, RaglineError
from ragline.providers.aws.bedrock import bedrock_error
from ragline.providers.aws.clients import client
from ragline.resilience import RetryPolicy
from ragline.types import Chunk, Deadline, Hit, ModelEvent, Source, Token

SOURCE_URI = "x-amz-bedrock-kb-source-uri"
PAGE_NUMBER = "x-amz-bedrock-kb-document-page-number"
SEARCH_TYPES = {"hybrid": "HYBRID", "semantic": "SEMANTIC"}
MAX_QUERY_CHARS = 1000  # Retrieve's documented limit on the query text


def metadata_filter(filters: Mapping[str, str], tenant: str, tenant_attribute: str | None) -> dict[str, Any] | None:
    """A RetrievalFilter: ``equals`` per filter (``source``: ``startsWith`` on the source URI), joined by andAll."""
    conditions: list[dict[str, Any]] = []
    if tenant_attribute:
        conditions.append({"equals": {"key": tenant_attribute, "value": tenant}})
    for key, value in sorted(filters.items()):
        if key == "tenant":
            continue  # the tenant comes from the caller's identity, never from the request
        if key == "source":
            conditions.append({"startsWith": {"key": SOURCE_URI, "value": value}})
        else:
            conditions.append({"equals": {"key": key, "value": value}})
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"andAll": conditions}  # andAll takes two or more


def retrieval_configuration(k: int, search: str, filter_: dict[str, Any] | None) -> dict[str, Any]:
    """The ``vectorSearchConfiguration`` of a Retrieve or RetrieveAndGenerate request."""
    vector: dict[str, Any] = {"numberOfResults": k}
    if search in SEARCH_TYPES:
        vector["overrideSearchType"] = SEARCH_TYPES[search]
    if filter_:
        vector["filter"] = filter_
    return {"vectorSearchConfiguration": vector}


def location_uri(location: Mapping[str, Any]) -> str:
    """Where a retrieved reference comes from: its S3 URI, web URL, or the id its connector gives it."""
    for key, value in location.items():
        if key != "type" and isinstance(value, dict):
            for field in ("uri", "url", "id", "query"):
                if value.get(field):
                    return str(value[field])
    return str(location.get("type", "unknown"))


def _page(metadata: Mapping[str, Any]) -> int | None:
    value = metadata.get(PAGE_NUMBER)
    try:
        return int(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def reference_chunk(reference: Mapping[str, Any], rank: int, tenant: str, language: str) -> Chunk:
    """A retrieved reference (or Retrieve result) as a chunk: doc_id is its location, title its file name."""
    metadata = reference.get("metadata") or {}
    location = reference.get("location")
    uri = location_uri(location) if location else str(metadata.get(SOURCE_URI) or reference.get("documentId")
                                                       or "unknown")
    return Chunk(
        id=f"{uri}#{rank}", doc_id=uri, ordinal=rank, text=str(reference.get("content", {}).get("text", "")),
        title=uri.rstrip("/").rsplit("/", 1)[-1], heading="", page=_page(metadata), tenant=tenant,
        language=language, tags=(),
    )


def model_arn(model_id: str, region: str | None) -> str:
    """RetrieveAndGenerate takes a model ARN: a foundation model id becomes one (an ARN is kept as it is)."""
    if model_id.startswith("arn:"):
        return model_id
    if not region:
        raise ConfigError("the knowledge-base answerer needs a region for the model ARN: set RAGLINE_AWS_REGION")
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


class _Calls:
    """The client and the retry policy shared by the retriever and the answerer."""

    def __init__(self, knowledge_base_id: str, *, search: str = "default", tenant_attribute: str | None = None,
                 region: str | None = None, endpoint_url: str | None = None, timeout: float = 30.0,
                 policy: RetryPolicy | None = None, language: str = "en") -> None:
        if not knowledge_base_id:
            raise ConfigError("the knowledge base needs RAGLINE_KNOWLEDGE_BASE_ID")
        self.knowledge_base_id, self.search, self.tenant_attribute = knowledge_base_id, search, tenant_attribute
        self.language = language
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout
        self.policy = policy or RetryPolicy()
        self._rng = random.Random()

    @property
    def client(self) -> Any:
        return client("bedrock-agent-runtime", self._region, self._endpoint_url, self._timeout)

    def backoff(self, err: Exception, attempt: int, deadline: Deadline | None, retryable: bool = True) -> None:
        """After a failed attempt: wait (full jitter) when it may pass and time allows, else raise its error."""
        failure = bedrock_error(err, f"knowledge base {self.knowledge_base_id}")
        wait = self.policy.delay(attempt, self._rng)
        out_of_time = deadline is not None and deadline.remaining() <= wait
        if not (retryable and isinstance(failure, ModelUnavailableError)) or (
            attempt == self.policy.max_attempts or out_of_time
        ):
            raise failure from err
        time.sleep(wait)

    def call(self, operation: str, request: dict[str, Any], deadline: Deadline | None = None) -> Any:
        """One API call; throttling and transient faults are retried with full jitter, within the deadline."""
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                return getattr(self.client, operation)(**request)
            except (ClientError, BotoCoreError) as err:
                self.backoff(err, attempt, deadline)
        raise AssertionError("unreachable")  # pragma: no cover


class KnowledgeBaseRetriever(_Calls):
    """Retrieve from a Bedrock knowledge base; ragline's prompt, model and citations do the rest."""

    name = "knowledge-base"

    def request(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str) -> dict[str, Any]:
        """The Retrieve request."""
        filter_ = metadata_filter(filters, tenant, self.tenant_attribute)
        return {"knowledgeBaseId": self.knowledge_base_id, "retrievalQuery": {"text": question[:MAX_QUERY_CHARS]},
                "retrievalConfiguration": retrieval_configuration(k, self.search, filter_)}

    def retrieve(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str) -> list[Hit]:
        """The best ``k`` chunks, scored by the knowledge base."""
        response = self.call("retrieve", self.request(question, k=k, filters=filters, tenant=tenant))
        return [
            Hit(reference_chunk(result, rank, tenant, self.language), float(result.get("score") or 0.0),
                ("knowledge-base",))
            for rank, result in enumerate(response.get("retrievalResults", [])[:k])
        ]


class KnowledgeBaseReply:
    """One RetrieveAndGenerate answer: iterate for its tokens; then ``sources`` and ``marks`` say what it cites."""

    def __init__(self, owner: KnowledgeBaseAnswerer, request: dict[str, Any], deadline: Deadline | None,
                 tenant: str) -> None:
        self._owner, self._request, self._deadline, self._tenant = owner, request, deadline, tenant
        self.sources: list[Source] = []
        self._spans: list[tuple[int, int, str, tuple[int, ...]]] = []
        self.guardrail = "NONE"
        self._numbers: dict[tuple[str, str], int] = {}
        self._events = self._run()

    def __iter__(self) -> Iterator[ModelEvent]:
        return self._events

    def close(self) -> None:
        """Stop reading the stream."""
        self._events.close()

    def marks(self, text: str) -> list[tuple[int, tuple[int, ...]]]:
        """Where each cited span ends in ``text``, with the numbers of its sources.

        The span's own text locates it (the API does not say whether ``end`` is inclusive); the offsets are the
        fallback when the text is not found.
        """
        out = []
        for start, end, part, numbers in self._spans:
            at = text.find(part, max(0, start - 2)) if part else -1
            if at < 0 and part:
                at = text.find(part)
            out.append((at + len(part) if at >= 0 else min(end, len(text)), numbers))
        return out

    def _cite(self, citation: Mapping[str, Any]) -> None:
        part = citation.get("generatedResponsePart") or citation.get("citation", {}).get("generatedResponsePart", {})
        references = citation.get("retrievedReferences") or citation.get("citation", {}).get("retrievedReferences", [])
        numbers = []
        for reference in references:
            chunk = reference_chunk(reference, len(self._numbers), self._tenant, self._owner.language)
            key = (chunk.doc_id, chunk.text)
            if key not in self._numbers:
                self._numbers[key] = len(self._numbers) + 1
                self.sources.append(Source(self._numbers[key], chunk.doc_id, chunk.title, chunk.heading, chunk.page,
                                           0.0, chunk.text))
            numbers.append(self._numbers[key])
        text_part = part.get("textResponsePart", {})
        span = text_part.get("span", {})
        if numbers:
            self._spans.append((int(span.get("start", 0)), int(span.get("end", 0)), str(text_part.get("text", "")),
                                tuple(dict.fromkeys(numbers))))

    def _run(self) -> Generator[ModelEvent, None, None]:
        from botocore.exceptions import BotoCoreError, ClientError

        owner = self._owner
        if not owner.stream:
            whole = owner.call("retrieve_and_generate", self._request, self._deadline)
            text = whole["output"]["text"]
            yield Token(text)
            for citation in whole.get("citations", []):
                self._cite(citation)
            self.guardrail = whole.get("guardrailAction", "NONE")
            return
        for attempt in range(1, owner.policy.max_attempts + 1):  # one budget for starting and for the stream
            length = 0
            response: dict[str, Any] = {}
            try:
                response = owner.client.retrieve_and_generate_stream(**self._request)
                for event in response["stream"]:
                    if "output" in event:
                        length += len(event["output"]["text"])
                        yield Token(event["output"]["text"])
                    elif "citation" in event:
                        self._cite(event["citation"])
                    elif "guardrail" in event:
                        self.guardrail = event["guardrail"].get("action", "NONE")
            except (ClientError, BotoCoreError) as err:  # also an exception event in the stream: botocore raises it
                # after text was sent the caller keeps it as a partial answer: never restarted
                owner.backoff(err, attempt, self._deadline, retryable=not length)
            else:
                return
            finally:
                if "stream" in response:
                    response["stream"].close()  # an early stop or a failure frees the connection now


class KnowledgeBaseAnswerer(_Calls):
    """RetrieveAndGenerate(Stream) as ragline's generator: the knowledge base retrieves, prompts and answers."""

    accepts_images = False

    def __init__(self, knowledge_base_id: str, model_id: str, *, stream: bool = True, **kw: Any) -> None:
        super().__init__(knowledge_base_id, **kw)
        self.model_id, self.stream = model_id, stream
        self.name = f"knowledge-base:{knowledge_base_id}:{model_id}"

    def request(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str) -> dict[str, Any]:
        """The RetrieveAndGenerate request."""
        filter_ = metadata_filter(filters, tenant, self.tenant_attribute)
        region = self._region or self.client.meta.region_name
        return {
            "input": {"text": question},
            "retrieveAndGenerateConfiguration": {
                "type": "KNOWLEDGE_BASE",
                "knowledgeBaseConfiguration": {
                    "knowledgeBaseId": self.knowledge_base_id, "modelArn": model_arn(self.model_id, region),
                    "retrievalConfiguration": retrieval_configuration(k, self.search, filter_),
                },
            },
        }

    def respond(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str,
                deadline: Deadline | None = None) -> KnowledgeBaseReply:
        """The answer as it streams; its sources and citation marks are complete once it is consumed."""
        if len(question) > 20_000:
            raise RaglineError("RetrieveAndGenerate takes questions up to 20,000 characters")
        return KnowledgeBaseReply(self, self.request(question, k=k, filters=filters, tenant=tenant), deadline, tenant)
