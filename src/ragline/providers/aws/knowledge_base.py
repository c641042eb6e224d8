"""Amazon Bedrock Knowledge Bases: as a retriever (Retrieve) or as a one-call answerer (RetrieveAndGenerate).

As a retriever, the knowledge base finds the passages and ragline does the rest: its prompt, model, citation
check, cache and streaming. As an answerer, one RetrieveAndGenerateStream call (or RetrieveAndGenerate) does
both; the knowledge base's citations (a span of the answer and the references that support it) become ragline's
numbered sources and ``[n]`` markers at the end of each span. The answer is read whole before it is passed on
(sources first, as every answer's event stream has them), so it arrives at once rather than token by token.

A metadata filter carries ragline's filters, and the tenant when ``knowledge_base_tenant_attribute`` names the
metadata key that holds it (otherwise the knowledge base serves one tenant). ``source=PREFIX`` filters on the
source URI that Bedrock records for every chunk (``x-amz-bedrock-kb-source-uri``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any

from ragline.errors import ConfigError, InputError, ModelUnavailableError, RaglineError
from ragline.providers.aws.bedrock import bedrock_error
from ragline.providers.aws.clients import client, model_arn
from ragline.resilience import RetryPolicy, read_timeout, unavailable
from ragline.types import Chunk, Deadline, Hit, ModelEvent, Query, ResponseEvent, Source, Sources, Token

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


WHO = "the knowledge-base answerer"


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

    def client(self, deadline: Deadline | None = None) -> Any:
        """The Bedrock Agent Runtime client, its read timeout cut to the deadline (or the current stage's)."""
        return client("bedrock-agent-runtime", self._region, self._endpoint_url, read_timeout(self._timeout, deadline))

    def failure(self, err: Exception) -> RaglineError:
        """A botocore failure as ragline's error (throttling and transient faults: ModelUnavailableError)."""
        return bedrock_error(err, f"knowledge base {self.knowledge_base_id}")

    def call(self, operation: str, request: dict[str, Any], deadline: Deadline | None = None) -> Any:
        """One API call; throttling and transient faults are retried with full jitter, within the deadline."""
        from botocore.exceptions import BotoCoreError, ClientError

        def once() -> Any:
            try:
                return getattr(self.client(deadline), operation)(**request)
            except (ClientError, BotoCoreError) as err:
                raise self.failure(err) from err

        return self.policy.run(once, transient=unavailable, deadline=deadline)


class KnowledgeBaseRetriever(_Calls):
    """Retrieve from a Bedrock knowledge base; ragline's prompt, model and citations do the rest."""

    name = "knowledge-base"
    has_modes = False

    def request(self, question: str, *, k: int, filters: Mapping[str, str], tenant: str) -> dict[str, Any]:
        """The Retrieve request."""
        filter_ = metadata_filter(filters, tenant, self.tenant_attribute)
        return {"knowledgeBaseId": self.knowledge_base_id, "retrievalQuery": {"text": question[:MAX_QUERY_CHARS]},
                "retrievalConfiguration": retrieval_configuration(k, self.search, filter_)}

    def retrieve(self, question: str, *, k: int, mode: str = "hybrid", filters: Mapping[str, str],
                 tenant: str) -> list[Hit]:
        """The best ``k`` chunks, scored by the knowledge base (whose own search setting stands for the mode)."""
        response = self.call("retrieve", self.request(question, k=k, filters=filters, tenant=tenant))
        return [
            Hit(reference_chunk(result, rank, tenant, self.language), float(result.get("score") or 0.0),
                ("knowledge-base",))
            for rank, result in enumerate(response.get("retrievalResults", [])[:k])
        ]


class _Reply:
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
                response = owner.client(self._deadline).retrieve_and_generate_stream(**self._request)
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
                failure = owner.failure(err)
                owner.policy.wait_or_raise(failure, attempt, self._deadline,
                                           transient=isinstance(failure, ModelUnavailableError) and not length)
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
        region = self._region or self.client().meta.region_name
        return {
            "input": {"text": question},
            "retrieveAndGenerateConfiguration": {
                "type": "KNOWLEDGE_BASE",
                "knowledgeBaseConfiguration": {
                    "knowledgeBaseId": self.knowledge_base_id, "modelArn": model_arn(self.model_id, region, WHO),
                    "retrievalConfiguration": retrieval_configuration(k, self.search, filter_),
                },
            },
        }

    retrieves = True  # RetrieveAndGenerate finds its own passages

    def describe(self) -> str:
        """Retrieve one passage: the call every answer starts with."""
        self.call("retrieve", {"knowledgeBaseId": self.knowledge_base_id, "retrievalQuery": {"text": "ragline doctor"},
                               "retrievalConfiguration": retrieval_configuration(1, self.search, None)})
        return "the knowledge base answers Retrieve; its model is first called by the first question"

    def close(self) -> None:
        """Nothing to free: boto3 clients are shared by the process."""

    def respond(self, query: Query, sources: Sequence[Source], *, tenant: str,
                deadline: Deadline | None) -> Generator[ResponseEvent, None, None]:
        """``Sources`` (the passages the answer cites), then the answer with their ``[n]`` markers.

        The whole answer is read before anything is passed on: which passages it cites, and where, is only known
        at its end, and the contract puts the sources first. A stream cut after some text still yields that text,
        then raises, so the engine returns it marked partial.
        """
        if len(query.question) > 20_000:
            raise InputError("RetrieveAndGenerate takes questions up to 20,000 characters")
        request = self.request(query.question, k=query.k, filters=query.filters, tenant=tenant)
        reply = _Reply(self, request, deadline, tenant)
        parts: list[str] = []
        failure: ModelUnavailableError | None = None
        try:
            for event in reply:
                if isinstance(event, Token):
                    parts.append(event.text)
                if deadline is not None and deadline.expired():
                    break
        except ModelUnavailableError as err:
            if not parts:
                raise
            failure = err
        finally:
            reply.close()
        text = "".join(parts)
        yield Sources(reply.sources)
        yield Token(insert_marks(text, reply.marks(text)))
        if failure is not None:
            raise failure


def insert_marks(text: str, marks: Sequence[tuple[int, Sequence[int]]]) -> str:
    """``text`` with a ``[n, m]`` marker at each offset, before the sentence's closing punctuation if it ends there."""
    out = text
    for offset, numbers in sorted(marks, key=lambda m: -m[0]):
        at = max(0, min(offset, len(out)))
        while at > 0 and out[at - 1].isspace():
            at -= 1
        if at > 0 and out[at - 1] in ".!?":
            at -= 1
        out = out[:at] + " [" + ", ".join(str(n) for n in numbers) + "]" + out[at:]
    return out
