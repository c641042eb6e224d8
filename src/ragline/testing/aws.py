"""A loopback stand-in for Bedrock Runtime, Kendra and Textract, speaking their wire protocols, for tests and demos.

moto serves S3, DynamoDB, SQS, Cognito and the API Gateway Management API; it has no streaming Bedrock, no Kendra.
This server answers the real boto3 client: HTTP errors in the AWS JSON error format, and streams in the
``application/vnd.amazon.eventstream`` binary framing (prelude, headers, payload, CRC32s), so botocore's own
parsers decode everything. It checks request bodies against the documented shapes (a 400 ``ValidationException``
like Bedrock's when they are wrong) and records every request.

The chat answer is the first sentence of the numbered source [1] in the prompt, cited, so end-to-end tests see a
grounded answer. ``script`` injects faults, one entry per chat request (the last repeats): ``ok``, ``throttle``
(HTTP 429 ThrottlingException), ``unavailable`` (503), ``denied`` (403 AccessDeniedException), ``midstream:N``
(N tokens, then a throttlingException event in the stream), ``slow:S`` (S seconds between tokens), ``long:N``
(the answer, then one run-on sentence to N more characters).
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

from ragline.testing.bedrock_rerank import rerank_problems, rerank_response
from ragline.testing.fakes import FakeEmbedder, QuietServer
from ragline.testing.guardrail import assess, guardrail_problems
from ragline.testing.textract import detect_document_text

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
    """Bedrock Runtime and Agent Runtime, Kendra and Textract on 127.0.0.1, at ``endpoint_url``.

    Bedrock: ConverseStream, InvokeModelWithResponseStream, InvokeModel (Titan v2; Anthropic Messages, as Step
    Functions calls it), ApplyGuardrail's grounding check (word overlap against the thresholds given), Rerank.
    Knowledge bases: Retrieve, RetrieveAndGenerate(Stream). Kendra: Retrieve. Textract: DetectDocumentText.
    ``passages`` are Kendra's and the knowledge base's documents: dicts with ``id``, ``title``, ``text``, ``uri``,
    ``language`` and optionally ``tenant`` (knowledge-base metadata).
    """

    def __init__(self, script: Sequence[str] = ("ok",), passages: Sequence[dict[str, str]] = (),
                 grounding_threshold: float = 0.75, relevance_threshold: float = 0.0) -> None:
        self.script = list(script)
        self.grounding_threshold, self.relevance_threshold = grounding_threshold, relevance_threshold
        self.requests: list[dict[str, Any]] = []
        self.passages, self.kendra_delay = list(passages), 0.0  # the delay of Kendra's Retrieve, seconds
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
                if target == "Textract.DetectDocumentText":
                    self._json(*detect_document_text(body))
                    return
                if target.endswith(".Retrieve"):
                    time.sleep(owner.kendra_delay)
                    self._json(200, owner.kendra_retrieve(body))
                    return
                if path.startswith("/knowledgebases/") or path.startswith("/retrieveAndGenerate"):
                    self._knowledge_base(path, body)
                    return
                if path == "/rerank":
                    problems = rerank_problems(body)
                    self._json(*((400, {"message": "; ".join(problems), "__type": "ValidationException"})
                                 if problems else (200, rerank_response(body))))
                    return
                guardrail = re.fullmatch(r"/guardrail/([^/]+)/version/([^/]+)/apply", path)
                if guardrail:
                    self._guardrail(body)
                    return
                match = re.fullmatch(r"/model/(.+)/(converse-stream|invoke-with-response-stream|invoke)", path)
                if not match:
                    self._error(404, "UnknownOperationException", f"no route for {path}")
                    return
                model_id, operation = match.groups()
                if operation == "invoke" and model_id.startswith("amazon.titan-embed"):
                    self._titan(model_id, body)
                elif operation == "invoke":
                    self._message(body)
                else:
                    self._chat(operation, body)

            def _message(self, body: dict[str, Any]) -> None:
                """An Anthropic Messages reply (InvokeModel): the grounded answer, or echoing the last line."""
                problems = anthropic_problems(body)
                if problems:
                    self._error(400, "ValidationException", "; ".join(problems))
                    return
                if self._step() is None:
                    return
                prompt = body["messages"][-1]["content"][-1]["text"]
                text = "".join(grounded_answer(prompt))
                if text == "I don't know.":
                    text = "Re: " + prompt.strip().splitlines()[-1][:200]
                self._json(200, {"id": "msg_loopback", "type": "message", "role": "assistant",
                                 "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                 "usage": {"input_tokens": len(prompt.split()), "output_tokens": len(text.split())}})

            def _chat(self, operation: str, body: dict[str, Any]) -> None:
                problems = anthropic_problems(body) if operation == "invoke-with-response-stream" else []
                if problems:
                    self._error(400, "ValidationException", "; ".join(problems))
                    return
                prompt = body["messages"][-1]["content"][-1]["text"]
                step = self._step()
                if step is None:
                    return
                tokens = grounded_answer(prompt)
                if step[0] == "long":  # then one run-on sentence, in tokens of 1,000 characters, to N characters
                    filler = (" and the answer goes on" * 44)[:1000]
                    tokens += [filler] * (int(step[1]) // 1000)
                frames = (converse_frames if operation == "converse-stream" else anthropic_frames)(tokens)
                self._stream(frames, *step, skip=1)

            def _step(self) -> tuple[str, str] | None:
                """The script's next entry; an injected error is answered here (None)."""
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                kind, _, arg = step.partition(":")
                errors = {"throttle": (429, "ThrottlingException"), "unavailable": (503, "ServiceUnavailableException"),
                          "denied": (403, "AccessDeniedException")}
                if kind in errors:
                    status, code = errors[kind]
                    self._error(status, code, f"injected {kind}")
                    return None
                return kind, arg

            def _stream(self, frames: list[bytes], kind: str, arg: str, skip: int = 0,
                        headers: dict[str, str] | None = None) -> None:
                """Send event-stream frames chunked; ``midstream:N`` ends with a throttlingException after N."""
                self.send_response(200)
                for name, value in {"Content-Type": "application/vnd.amazon.eventstream", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                if kind == "midstream":
                    cut = stream_exception("throttlingException", "injected mid-stream throttling")
                    frames[int(arg) + skip:] = [cut]
                try:
                    for frame in frames:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                        self.wfile.flush()
                        if kind == "slow":
                            time.sleep(float(arg))
                    self.wfile.write(b"0\r\n\r\n")
                except ConnectionError:
                    return

            def _knowledge_base(self, path: str, body: dict[str, Any]) -> None:
                problems = knowledge_base_problems(path, body)
                if problems:
                    self._error(400, "ValidationException", "; ".join(problems))
                    return
                if path.endswith("/retrieve"):
                    self._json(200, {"retrievalResults": owner.kb_retrieve(body["retrievalQuery"]["text"],
                                                                           body["retrievalConfiguration"])})
                    return
                step = self._step()
                if step is None:
                    return
                config = body["retrieveAndGenerateConfiguration"]["knowledgeBaseConfiguration"]
                tokens, citation = owner.kb_answer(body["input"]["text"], config.get("retrievalConfiguration", {}))
                session = {"x-amzn-bedrock-knowledge-base-session-id": "fake-session"}
                if path == "/retrieveAndGenerate":
                    self._json(200, {"sessionId": "fake-session", "output": {"text": "".join(tokens)},
                                     "citations": [citation] if citation else []})
                    return
                frames = [stream_event("output", {"text": t}) for t in tokens]
                if citation:
                    frames.append(stream_event("citation", citation))
                self._stream(frames, *step, headers=session)

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

            def _guardrail(self, body: dict[str, Any]) -> None:
                problems = guardrail_problems(body)
                if problems:
                    self._error(400, "ValidationException", "; ".join(problems))
                    return
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                if step == "throttle":
                    self._error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
                    return
                self._json(200, owner.apply_guardrail(body))

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

        self._server = QuietServer(Handler)

    @property
    def endpoint_url(self) -> str:
        """Where boto3 should send Bedrock Runtime and Kendra requests."""
        return self._server.origin

    def chat_requests(self) -> list[dict[str, Any]]:
        """The recorded chat requests (ConverseStream and InvokeModelWithResponseStream)."""
        return [r for r in self.requests if r["path"].endswith("stream")]

    def apply_guardrail(self, body: dict[str, Any]) -> dict[str, Any]:
        """A contextual grounding assessment against this server's thresholds (``testing/guardrail.py``)."""
        return assess(body, self.grounding_threshold, self.relevance_threshold)

    def kendra_retrieve(self, body: dict[str, Any]) -> dict[str, Any]:
        """Kendra Retrieve over ``passages``: word overlap, filtered by the attribute filter like the service.

        ``_language_code`` is a passage's ``language``; any other key (a tenant attribute) is the passage's own.
        """
        attribute_filter = body.get("AttributeFilter", {})
        words = set(_WORD.findall(body["QueryText"].lower()))
        scored = []
        for p in self.passages:
            if not _kendra_matches(attribute_filter, p):
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

    def kb_retrieve(self, text: str, configuration: dict[str, Any]) -> list[dict[str, Any]]:
        """Knowledge base Retrieve over ``passages`` (metadata: ``tenant``, the source URI): word overlap."""
        vector = configuration.get("vectorSearchConfiguration", {})
        words = set(_WORD.findall(text.lower()))
        scored = []
        for p in self.passages:
            metadata = {"x-amz-bedrock-kb-source-uri": p["uri"], "x-amz-bedrock-kb-data-source-id": "DS1",
                        **({"tenant": p["tenant"]} if "tenant" in p else {})}
            if not _kb_filter_matches(vector.get("filter"), metadata):
                continue
            overlap = len(words & set(_WORD.findall(p["text"].lower())))
            if overlap:
                scored.append((overlap / max(len(words), 1), p, metadata))
        scored.sort(key=lambda s: -s[0])
        return [
            {"content": {"text": p["text"], "type": "TEXT"}, "metadata": metadata, "score": round(score, 4),
             "location": {"type": "S3", "s3Location": {"uri": p["uri"]}}}
            for score, p, metadata in scored[: vector.get("numberOfResults", 5)]
        ]

    def kb_answer(self, text: str, configuration: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
        """RetrieveAndGenerate: the best passage's first sentence, cited by a span over it."""
        results = self.kb_retrieve(text, configuration)
        if not results:
            return ["Sorry, I am unable to assist you with this request."], None
        sentence = results[0]["content"]["text"].split(". ")[0].rstrip(".") + "."
        tokens = [w if n == 0 else " " + w for n, w in enumerate(sentence.split(" "))]
        reference = {k: results[0][k] for k in ("content", "location", "metadata")}
        part = {"textResponsePart": {"text": sentence, "span": {"start": 0, "end": len(sentence) - 1}}}
        return tokens, {"generatedResponsePart": part, "retrievedReferences": [reference]}

    def __enter__(self) -> FakeAWSModels:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


_MODEL_ARN = re.compile(r"arn:aws(-[a-z-]+)?:bedrock:[a-z0-9-]+:(\d{12})?:(foundation-model|inference-profile|"
                        r"application-inference-profile|provisioned-model)/.+")


def knowledge_base_problems(path: str, body: dict[str, Any]) -> list[str]:
    """What Bedrock would refuse in a Retrieve or RetrieveAndGenerate body (botocore checks types and lengths)."""
    problems = []
    configuration = body.get("retrievalConfiguration", {})
    if not path.endswith("/retrieve"):
        outer = body.get("retrieveAndGenerateConfiguration", {})
        kb = outer.get("knowledgeBaseConfiguration", {})
        configuration = kb.get("retrievalConfiguration", {})
        if outer.get("type") != "KNOWLEDGE_BASE" or not _MODEL_ARN.fullmatch(kb.get("modelArn", "")):
            problems.append("expected type KNOWLEDGE_BASE and a model ARN")
    pending = [configuration.get("vectorSearchConfiguration", {}).get("filter")]
    while pending:
        node = pending.pop()
        if not node:
            continue
        if len(node) != 1:
            problems.append("a filter has exactly one operator")
        for op in ("andAll", "orAll"):
            if op in node:
                if len(node[op]) < 2:
                    problems.append(f"{op} takes two or more filters")
                pending.extend(node[op])
    return problems


def _kb_filter_matches(node: dict[str, Any] | None, metadata: dict[str, Any]) -> bool:
    if not node:
        return True
    op, spec = next(iter(node.items()))
    if op == "andAll":
        return all(_kb_filter_matches(n, metadata) for n in spec)
    if op == "orAll":
        return any(_kb_filter_matches(n, metadata) for n in spec)
    value = metadata.get(spec["key"])
    if op == "equals":
        return bool(value == spec["value"])
    if op == "startsWith":
        return isinstance(value, str) and value.startswith(spec["value"])
    raise ValueError(f"the fake knowledge base does not evaluate {op}")


def _kendra_matches(attribute_filter: dict[str, Any], passage: dict[str, str]) -> bool:
    """Kendra's EqualsTo and AndAllFilters over a passage's attributes (a missing attribute never matches)."""
    if "AndAllFilters" in attribute_filter:
        return all(_kendra_matches(f, passage) for f in attribute_filter["AndAllFilters"])
    equals = attribute_filter.get("EqualsTo")
    if equals is None:
        return True
    key = "language" if equals["Key"] == "_language_code" else equals["Key"]
    value = passage.get(key, "en" if key == "language" else None)
    return bool(value == equals["Value"]["StringValue"])


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
