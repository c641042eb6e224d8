"""Amazon Bedrock: chat models and Titan Text Embeddings v2.

Chat streams with ConverseStream (any model), or InvokeModelWithResponseStream with the Anthropic Messages body.
Responses, event streams included, are decoded by botocore; this module only maps the decoded events onto
ragline's events and AWS error codes onto ragline's errors (throttling and transient faults are
``ModelUnavailableError``, which the resilience policy retries; the rest are permanent for this model).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ragline.errors import ConfigError, ModelError, ModelUnavailableError, RaglineError
from ragline.providers.aws.clients import client, error_code
from ragline.providers.probe import one_token_reply
from ragline.resilience import RetryPolicy, read_timeout, unavailable
from ragline.types import Deadline, Message, ModelEvent, Token, Usage, UsageEvent, Vectors

ANTHROPIC_VERSION = "bedrock-2023-05-31"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
# Errors that pass with time: retried with backoff, then the next region or model.
TRANSIENT = {
    "ThrottlingException", "throttlingException", "ServiceUnavailableException", "serviceUnavailableException",
    "InternalServerException", "internalServerException", "ModelTimeoutException", "modelTimeoutException",
    "ModelNotReadyException", "ModelStreamErrorException", "modelStreamErrorException", "TooManyRequestsException",
    "RequestTimeout", "ServiceQuotaExceededException",
}
_NOT_FOUND = {"ResourceNotFoundException", "resourceNotFoundException"}
# Models that take images in the question (Claude 3 and later, Nova Lite/Pro/Premier, Llama 3.2 vision, Pixtral).
_VISION = re.compile(r"claude-(3|sonnet-4|opus-4|haiku-4)|nova-(lite|pro|premier)|llama3-2-(11|90)b|pixtral")


def bedrock_error(err: Exception, where: str) -> RaglineError:
    """A ragline error for a botocore failure (ClientError, EventStreamError, timeouts, lost connections)."""
    from botocore.exceptions import ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(err, ReadTimeoutError):
        return ModelUnavailableError(f"{where}: timed out waiting for the model")
    if isinstance(err, BotoConnectionError):
        return ModelUnavailableError(f"{where}: cannot connect ({type(err).__name__})")
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message", err)) if isinstance(err, ClientError) else str(err)
    if code in TRANSIENT:
        return ModelUnavailableError(f"{where}: {code} (throttled or unavailable): {message}")
    if code in _NOT_FOUND:
        return ConfigError(f"{where}: model not found or not enabled in this region: {message}")
    if code == "AccessDeniedException":
        return ModelError(f"{where}: access denied (IAM bedrock:InvokeModel* or model access): {message}")
    return ModelError(f"{where}: {code or type(err).__name__}: {message}")


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


class BedrockChatModel:
    """A Bedrock chat model in one region, streamed with ConverseStream or (Anthropic) InvokeModelWithResponseStream."""

    def __init__(
        self, model_id: str, *, region: str | None = None, api: str = "converse", endpoint_url: str | None = None,
        timeout: float = 30.0, temperature: float = 0.0, context_tokens: int = 200_000,
    ) -> None:
        if api == "invoke" and "anthropic." not in model_id:
            raise ConfigError(f"bedrock_api 'invoke' sends the Anthropic Messages body; {model_id!r} is not "
                              "an Anthropic model: use bedrock_api 'converse'")
        self.model_id = model_id
        self.region = region
        self.api = api
        self.name = f"bedrock:{model_id}" + (f"@{region}" if region else "")
        self.context_tokens = context_tokens
        self.accepts_images = bool(_VISION.search(model_id))
        self._endpoint_url = endpoint_url
        self._timeout = timeout
        self._temperature = temperature

    def _client(self, deadline: Deadline | None = None) -> Any:
        return client("bedrock-runtime", self.region, self._endpoint_url, read_timeout(self._timeout, deadline))

    def describe(self) -> str:
        """A one-token request, as the first answer would make it."""
        return one_token_reply(self)

    def close(self) -> None:
        """Nothing to free: boto3 clients are shared by the process."""

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Stream the reply; botocore failures become ModelError / ModelUnavailableError."""
        if any(m.images for m in messages) and not self.accepts_images:
            raise ConfigError(f"{self.model_id} does not take images; choose a model that does (Claude 3, Nova Pro)")
        call = self._converse if self.api == "converse" else self._invoke
        stream: Any = None
        try:
            stream, events = call(messages, max_tokens, deadline)
            for event in events:
                yield from event
                if deadline is not None and deadline.expired():
                    return
        except _boto_errors() as err:
            raise bedrock_error(err, self.name) from err
        finally:
            if stream is not None:
                stream.close()  # a caller that stops early frees the connection now

    def _converse(self, messages: Sequence[Message], max_tokens: int,
                  deadline: Deadline | None) -> tuple[Any, Iterator[list[ModelEvent]]]:
        request = converse_request(self.model_id, messages, max_tokens, self._temperature)
        stream = self._client(deadline).converse_stream(**request)["stream"]
        return stream, (converse_events(e) for e in stream)

    def _invoke(self, messages: Sequence[Message], max_tokens: int,
                deadline: Deadline | None) -> tuple[Any, Iterator[list[ModelEvent]]]:
        body = anthropic_body(messages, max_tokens, self._temperature)
        response = self._client(deadline).invoke_model_with_response_stream(
            modelId=self.model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
        )
        stream = response["body"]
        counts: dict[str, int] = {}
        return stream, (anthropic_events(e, counts) for e in stream)


def converse_request(model_id: str, messages: Sequence[Message], max_tokens: int, temperature: float) -> dict[str, Any]:
    """The ConverseStream parameters: system prompts apart, then alternating user/assistant content blocks."""
    system = [{"text": m.content} for m in messages if m.role == "system"]
    turns = []
    for m in messages:
        if m.role == "system":
            continue
        blocks: list[dict[str, Any]] = [{"image": {"format": i.format, "source": {"bytes": i.data}}} for i in m.images]
        blocks.append({"text": m.content})
        turns.append({"role": m.role, "content": blocks})
    request: dict[str, Any] = {
        "modelId": model_id, "messages": turns,
        "inferenceConfig": {"maxTokens": max_tokens, "temperature": temperature},
    }
    if system:
        request["system"] = system
    return request


def converse_events(event: dict[str, Any]) -> list[ModelEvent]:
    """Ragline events for one decoded ConverseStream event."""
    if "contentBlockDelta" in event:
        text = event["contentBlockDelta"].get("delta", {}).get("text")
        return [Token(text)] if text else []
    if "metadata" in event:
        usage = event["metadata"].get("usage", {})
        return [UsageEvent(Usage(int(usage.get("inputTokens", 0)), int(usage.get("outputTokens", 0))))]
    return []


def anthropic_body(messages: Sequence[Message], max_tokens: int, temperature: float) -> dict[str, Any]:
    """The Anthropic Messages API body that Bedrock's InvokeModel* takes for Claude."""
    body: dict[str, Any] = {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": max_tokens,
                            "temperature": temperature, "messages": []}
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    if system:
        body["system"] = system
    for m in messages:
        if m.role == "system":
            continue
        content: list[dict[str, Any]] = [
            {"type": "image", "source": {"type": "base64", "media_type": i.media_type,
                                          "data": base64.b64encode(i.data).decode()}}
            for i in m.images
        ]
        content.append({"type": "text", "text": m.content})
        body["messages"].append({"role": m.role, "content": content})
    return body


def anthropic_events(event: dict[str, Any], counts: dict[str, int]) -> list[ModelEvent]:
    """Ragline events for one ``chunk`` of InvokeModelWithResponseStream (an Anthropic stream event).

    Usage comes in two parts (input tokens at the start, output tokens near the end); ``counts`` carries them.
    """
    if "chunk" not in event:
        return []
    payload = json.loads(event["chunk"]["bytes"])
    kind = payload.get("type")
    if kind == "content_block_delta":
        text = payload.get("delta", {}).get("text")
        return [Token(text)] if text else []
    if kind == "message_start":
        counts["in"] = int(payload.get("message", {}).get("usage", {}).get("input_tokens", 0))
    elif kind == "message_delta":
        counts["out"] = int(payload.get("usage", {}).get("output_tokens", 0))
    elif kind == "message_stop":
        return [UsageEvent(Usage(counts.get("in", 0), counts.get("out", 0)))]
    return []


class TitanEmbedder:
    """Amazon Titan Text Embeddings v2 (one InvokeModel per text, several in flight); normalised vectors.

    Chunks are sized with the MiniLM WordPiece tokenizer that ships with ragline: a close, conservative count
    for Titan's own tokens, whose limit (8,192) is far above any chunk.
    """

    def __init__(self, *, dimension: int = 1024, region: str | None = None, endpoint_url: str | None = None,
                 timeout: float = 30.0, concurrency: int = 8, policy: RetryPolicy | None = None) -> None:
        self.dimension = dimension
        self.policy = policy or RetryPolicy()
        self.name = f"{TITAN_V2}/{dimension}"
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout
        self._concurrency = concurrency
        self._counter: Any = None

    @property
    def tokenizer(self) -> Any:
        """The WordPiece tokenizer used to size chunks."""
        if self._counter is None:
            from ragline.providers.local.minilm import wordpiece_tokenizer

            self._counter = wordpiece_tokenizer()
        return self._counter

    def count_tokens(self, text: str) -> int:
        """Approximate tokens in ``text``."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def _embed_one(self, text: str) -> list[float]:
        return self.policy.run(lambda: self._invoke_one(text), transient=unavailable)

    def _invoke_one(self, text: str) -> list[float]:
        body = {"inputText": text, "dimensions": self.dimension, "normalize": True}
        try:
            api = client("bedrock-runtime", self._region, self._endpoint_url, read_timeout(self._timeout))
            response = api.invoke_model(
                modelId=TITAN_V2, body=json.dumps(body), contentType="application/json", accept="application/json"
            )
            vector: list[float] = json.loads(response["body"].read())["embedding"]
        except _boto_errors() as err:
            raise bedrock_error(err, f"bedrock:{TITAN_V2}") from err
        if len(vector) != self.dimension:
            raise ModelError(f"{TITAN_V2} returned {len(vector)} dimensions, expected {self.dimension}")
        return vector

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Vectors for the texts, in order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:
            return np.asarray([self._embed_one(texts[0])], dtype=np.float32)
        with ThreadPoolExecutor(min(self._concurrency, len(texts))) as pool:
            return np.asarray(list(pool.map(self._embed_one, texts)), dtype=np.float32)
