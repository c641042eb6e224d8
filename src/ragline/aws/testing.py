"""A loopback stand-in for Bedrock Runtime and Kendra, speaking their wire protocols, for tests and demos.

moto serves S3, DynamoDB, SQS, Cognito and the API Gateway Management API; it has no streaming Bedrock and no
Kendra. This server answers the real boto3 client: HTTP errors in the AWS JSON error format, and streams in the
``application/vnd.amazon.eventstream`` binary framing (prelude, headers, payload, CRC32s), so botocore's own
parsers decode everything. It checks request bodies against the documented shapes (a 400
``ValidationException`` like Bedrock's when they are wrong) and records every request.

The chat answer is the first sentence of the numbered source [1] in the prompt, cited, so end-to-end tests see a
grounded answer. ``script`` injects faults, one entry per chat request (the last repeats): ``ok``, ``throttle``
(HTTP 429 ThrottlingException), ``unavailable`` (503), ``denied`` (403 AccessDeniedException), ``midstream:N``
(N tokens, then a throttlingException event in the stream), ``slow:S`` (S seconds between tokens).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
import zlib
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from ..testing import FakeEmbedder, _QuietServer

_WORD = re.compile(r"\w+")
_SOURCE_ONE = re.compile(r"^\[1\] [^\n]*\n([^\n]+)", re.MULTILINE)


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream encoding (all headers are strings, type 7)."""
    encoded = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big") + value.encode()
        for name, value in headers.items()
    )
    prelude = (16 + len(encoded) + len(payload)).to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


def stream_event(kind: str, body: dict[str, Any]) -> bytes:
    """An event-stream ``event`` message with a JSON payload."""
    return event_message(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, json.dumps(body).encode()
    )


def stream_exception(kind: str, message: str) -> bytes:
    """An event-stream ``exception`` message (how Bedrock reports throttling after the stream began)."""
    return event_message(
        {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


def grounded_answer(prompt: str) -> list[str]:
    """The answer the fake model gives: the first sentence of source [1], cited, in word tokens."""
    match = _SOURCE_ONE.search(prompt)
    text = f"{match.group(1).split('. ')[0].rstrip('.')} [1]." if match else "I don't know."
    words = text.split(" ")
    return [w if n == 0 else " " + w for n, w in enumerate(words)]


def anthropic_problems(body: dict[str, Any]) -> list[str]:
    """What is wrong with an Anthropic Messages body for Bedrock (empty when it matches the documentation)."""
    problems = []
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        problems.append("anthropic_version must be bedrock-2023-05-31")
    if not isinstance(body.get("max_tokens"), int):
        problems.append("max_tokens is required (integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
        problems.append("messages must be a non-empty list starting with a user turn")
        return problems
    for before, after in itertools.pairwise(messages):
        if before.get("role") == after.get("role"):
            problems.append("roles must alternate between user and assistant")
    for m in messages:
        for block in m.get("content", []):
            if block.get("type") == "image":
                source = block.get("source", {})
                if source.get("type") != "base64" or source.get("media_type") not in (
                    "image/jpeg", "image/png", "image/gif", "image/webp"
                ):
                    problems.append("image blocks need a base64 source with a supported media_type")
            elif block.get("type") != "text" or not isinstance(block.get("text"), str):
                problems.append("content blocks are text or image")
    if "system" in body and not isinstance(body["system"], str):
        problems.append("system is a string")
    return problems


class FakeAWSModels:
    """Bedrock Runtime and Kendra on 127.0.0.1; point boto3 at ``endpoint_url``.

    Bedrock: ConverseStream, InvokeModelWithResponseStream, and InvokeModel for Titan v2. Kendra: Retrieve.
    ``passages`` are Kendra's documents: dicts with ``id``, ``title``, ``text``, ``uri`` and ``language``.
    """

    def __init__(self, script: Sequence[str] = ("ok",), passages: Sequence[dict[str, str]] = ()) -> None:
        self.script = list(script)
        self.passages = list(passages)
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # streams go out chunked, one event per chunk, as Bedrock sends them

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                """Route one AWS request."""
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                path = unquote(self.path)
                body = json.loads(raw) if raw else {}
                owner.requests.append({"path": path, "target": target, "body": body,
                                       "auth": self.headers.get("Authorization", "")})
                if target.endswith(".Retrieve"):
                    self._json(200, owner.kendra_retrieve(body))
                    return
                match = re.fullmatch(r"/model/(.+)/(converse-stream|invoke-with-response-stream|invoke)", path)
                if not match:
                    self._error(404, "UnknownOperationException", f"no route for {path}")
                    return
                model_id, operation = match.groups()
                if operation == "invoke":
                    self._titan(model_id, body)
                    return
                self._chat(operation, body)

            def _chat(self, operation: str, body: dict[str, Any]) -> None:
                problems = anthropic_problems(body) if operation == "invoke-with-response-stream" else []
                if problems:
                    self._error(400, "ValidationException", "; ".join(problems))
                    return
                prompt = body["messages"][-1]["content"][-1]["text"]
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                kind, _, arg = step.partition(":")
                errors = {"throttle": (429, "ThrottlingException"), "unavailable": (503, "ServiceUnavailableException"),
                          "denied": (403, "AccessDeniedException")}
                if kind in errors:
                    status, code = errors[kind]
                    self._error(status, code, f"injected {kind}")
                    return
                tokens = grounded_answer(prompt)
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                frames = (converse_frames if operation == "converse-stream" else anthropic_frames)(tokens)
                if kind == "midstream":
                    frames[int(arg) + 1:] = [stream_exception("throttlingException", "injected mid-stream throttling")]
                try:
                    for frame in frames:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                        self.wfile.flush()
                        if kind == "slow":
                            time.sleep(float(arg))
                    self.wfile.write(b"0\r\n\r\n")
                except ConnectionError:
                    return

            def _titan(self, model_id: str, body: dict[str, Any]) -> None:
                dimension = body.get("dimensions", 1024)
                if model_id != "amazon.titan-embed-text-v2:0" or not isinstance(body.get("inputText"), str) or (
                    dimension not in (256, 512, 1024)
                ):
                    self._error(400, "ValidationException", "expected Titan v2: inputText, dimensions 256/512/1024")
                    return
                text = body["inputText"]
                vector = FakeEmbedder(dimension).embed_batch([text])[0].tolist()
                self._json(200, {"embedding": vector, "inputTextTokenCount": len(text.split())})

            def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: str, message: str) -> None:
                # restJson services name the error in a header, JSON 1.1 ones (Kendra) in __type: send both
                self._json(status, {"message": message, "__type": code},
                           {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"})

        self._server = _QuietServer(Handler)

    @property
    def endpoint_url(self) -> str:
        """Where boto3 should send Bedrock Runtime and Kendra requests."""
        return self._server.origin

    def chat_requests(self) -> list[dict[str, Any]]:
        """The recorded chat requests (ConverseStream and InvokeModelWithResponseStream)."""
        return [r for r in self.requests if r["path"].endswith("stream")]

    def kendra_retrieve(self, body: dict[str, Any]) -> dict[str, Any]:
        """Kendra Retrieve over ``passages``: word overlap, filtered by ``_language_code`` like the service."""
        language = _language_filter(body.get("AttributeFilter", {}))
        words = set(_WORD.findall(body["QueryText"].lower()))
        scored = []
        for p in self.passages:
            if language and p.get("language", "en") != language:
                continue
            overlap = len(words & set(_WORD.findall(p["text"].lower())))
            if overlap:
                scored.append((overlap, p))
        scored.sort(key=lambda s: -s[0])
        items = []
        for overlap, p in scored[: body.get("PageSize", 10)]:
            confidence = "VERY_HIGH" if overlap > 3 else "HIGH" if overlap > 1 else "MEDIUM"
            items.append({
                "Id": f"{p['id']}-0", "DocumentId": p["id"], "DocumentTitle": p["title"], "Content": p["text"],
                "DocumentURI": p["uri"], "ScoreAttributes": {"ScoreConfidence": confidence},
                "DocumentAttributes": [{"Key": "_language_code", "Value": {"StringValue": p.get("language", "en")}}],
            })
        return {"QueryId": hashlib.md5(body["QueryText"].encode()).hexdigest(), "ResultItems": items}

    def __enter__(self) -> FakeAWSModels:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def _language_filter(attribute_filter: dict[str, Any]) -> str | None:
    filters = [attribute_filter, *attribute_filter.get("AndAllFilters", [])]
    for f in filters:
        equals = f.get("EqualsTo", {})
        if equals.get("Key") == "_language_code":
            return str(equals["Value"]["StringValue"])
    return None


def converse_frames(tokens: Sequence[str]) -> list[bytes]:
    """A ConverseStream response as Bedrock sends it."""
    return [
        stream_event("messageStart", {"role": "assistant"}),
        *(stream_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}}) for t in tokens),
        stream_event("contentBlockStop", {"contentBlockIndex": 0}),
        stream_event("messageStop", {"stopReason": "end_turn"}),
        stream_event("metadata", {"usage": {"inputTokens": 120, "outputTokens": len(tokens), "totalTokens":
                                            120 + len(tokens)}, "metrics": {"latencyMs": 42}}),
    ]


def anthropic_frames(tokens: Sequence[str]) -> list[bytes]:
    """An InvokeModelWithResponseStream response for Claude: Anthropic stream events inside ``chunk`` events."""
    import base64

    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"role": "assistant", "usage": {"input_tokens": 120, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}} for t in tokens),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(tokens)}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 120}},
    ]
    return [stream_event("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events]
