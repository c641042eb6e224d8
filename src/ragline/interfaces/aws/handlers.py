"""Lambda entry points for ingestion (SQS batches of S3 notifications) and the WebSocket API; all call the engine.

Both build one ``Ragline`` per execution environment (from ``RAGLINE_*`` variables, as ``deploy/template.yaml``
sets them) and reuse it across invocations.

* ``ingest``: ``uploads/TENANT/PATH`` objects become documents ``PATH`` of ``TENANT``. Creation ingests (skipped
  when the content hash is unchanged, so redelivery is harmless), removal deletes the chunks. Each event is
  checked against the bucket's current state (an object deleted before its creation event is handled is not
  ingested), so out-of-order delivery converges. A message that fails is reported in ``batchItemFailures``
  alone; SQS redelivers it, and after ``maxReceiveCount`` moves it to the dead-letter queue. The reason is on
  the document's registry row and in the log.
* ``websocket``: ``$connect`` checks the Cognito JWT (``?token=`` or the Authorization header) and records the
  connection with its tenant; ``$disconnect`` forgets it; ``sendMessage`` answers
  ``{"question", "conversation_id"?, "k"?, "filters"?, "model"?}`` by posting the answer's events as
  ``interfaces/wire.py`` encodes them (the local WebSocket's format; ``token`` events coalesced) through the API
  Gateway Management API. A gone connection (410) stops the model.
"""

from __future__ import annotations

import json
import logging
import time
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from ragline.compose import Ragline
from ragline.errors import AuthError, InputError, RaglineError, RateLimitedError
from ragline.ingest.bounds import Limits
from ragline.ingest.pipeline import bytes_item, oversized_item
from ragline.interfaces.auth import Authenticator
from ragline.interfaces.requests import QueryRequest
from ragline.interfaces.turns import Turns
from ragline.interfaces.wire import error_json, event_json
from ragline.providers.aws.clients import client, error_code
from ragline.seams import DocumentRecord, Identity
from ragline.settings import Settings
from ragline.types import Token

log = logging.getLogger("ragline.interfaces.aws")
UPLOADS = "uploads/"
FLUSH_SECONDS = 0.1  # tokens are posted in groups at most this far apart (one HTTPS call per group)
DEADLINE_MARGIN = 3.0  # seconds kept back from the Lambda timeout to post the partial answer


@cache
def _rag() -> Ragline:
    logging.basicConfig(level=logging.INFO, force=True)
    return Ragline(Settings())


def object_key(key: str) -> tuple[str, str] | None:
    """(tenant, doc_id) of an upload key, or None for keys outside ``uploads/TENANT/``."""
    if not key.startswith(UPLOADS):
        return None
    tenant, _, doc_id = key[len(UPLOADS):].partition("/")
    return (tenant, doc_id) if tenant and doc_id and not doc_id.endswith("/") else None


def ingest(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """SQS handler: apply each S3 notification; report the messages that failed."""
    rag = _rag()
    failures = []
    for record in event.get("Records", []):
        try:
            body = json.loads(record["body"])
            for notification in body.get("Records", []):  # s3:TestEvent messages have none
                _apply(rag, notification)
        except Exception as err:  # one bad message must not fail the batch
            line = json.dumps({"stage": "ingest", "message_id": record.get("messageId"), "error": str(err),
                               "receive_count": record.get("attributes", {}).get("ApproximateReceiveCount")})
            # bad input is explained by its message; anything else also needs its traceback
            (log.error if isinstance(err, RaglineError) else log.exception)(line)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _apply(rag: Ragline, notification: dict[str, Any]) -> None:
    bucket = notification["s3"]["bucket"]["name"]
    key = unquote_plus(notification["s3"]["object"]["key"])
    place = object_key(key)
    if place is None:
        return
    tenant, doc_id = place
    view = rag.for_tenant(tenant)
    s3 = client("s3", rag.settings.aws_region, rag.settings.endpoint_for("s3"))
    limit = rag.settings.max_file_bytes
    size, data = _read(s3, bucket, key, limit)
    if size is None:  # the object is gone: whatever the event said, the document must go
        removed = view.ingestor.remove(doc_id)
        log.info(json.dumps({"stage": "ingest", "tenant": tenant, "doc_id": doc_id, "removed": removed}))
        return
    item = (oversized_item(doc_id, doc_id, size, limit) if data is None
            else bytes_item(doc_id, doc_id, data, Limits.of(rag.settings)))
    report = view.ingestor.run([item])
    log.info(json.dumps({"stage": "ingest", "tenant": tenant, "doc_id": doc_id, "summary": report.summary()}))
    if report.failed:
        reason = report.failed[0][1]
        old = view.registry.get(tenant, doc_id)
        if old is not None and old.status == "ready":  # the previous version still serves; say why it stays
            view.registry.put_many([DocumentRecord(
                tenant, doc_id, old.title, old.sha256, old.status, old.chunks, old.bytes, old.ingested_at,
                f"the new version was not ingested: {reason}")])
        raise InputError(reason)


def _read(s3: Any, bucket: str, key: str, limit: int) -> tuple[int | None, bytes | None]:
    """(size, bytes) of the object: size None when it no longer exists, bytes None when it is over the limit.

    An object over the limit is never downloaded.
    """
    try:
        size: int = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size > limit:
            return size, None
        data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return None, None
        raise
    return size, data


# WebSocket API.
def websocket(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway WebSocket handler for ``$connect``, ``$disconnect`` and ``sendMessage``."""
    rag = _rag()
    request = event["requestContext"]
    route, connection = request["routeKey"], request["connectionId"]
    registry = rag.connections
    if route == "$connect":
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        token = (event.get("queryStringParameters") or {}).get("token")
        client_ip = str(request.get("identity", {}).get("sourceIp", ""))
        try:
            identity = _authenticator(rag).identify(headers.get("authorization"), token, client_ip)
        except AuthError as err:
            log.info(json.dumps({"stage": "connect", "refused": str(err)}))
            return {"statusCode": 429 if isinstance(err, RateLimitedError) else 401, "body": str(err)}
        registry.connection_put(connection, identity)
        return {"statusCode": 200}
    if route == "$disconnect":
        registry.connection_delete(connection)
        return {"statusCode": 200}
    return _send_message(rag, event, context)


def _signed_out(rag: Ragline, identity: Identity | None) -> AuthError | None:
    """Why a connection may no longer ask: never signed in, or its key revoked or token expired since $connect."""
    if identity is None:
        return AuthError("this connection is not signed in; reconnect with a token")
    try:
        _authenticator(rag).recheck(identity)
    except AuthError as err:
        return err
    return None


class _Poster:
    """Posts JSON events to one connection; remembers when the connection is gone (410)."""

    def __init__(self, rag: Ragline, request: dict[str, Any]) -> None:
        endpoint = rag.settings.websocket_endpoint or f"https://{request['domainName']}/{request['stage']}"
        self.api = client("apigatewaymanagementapi", rag.settings.aws_region, endpoint, 10.0)
        self.connection = request["connectionId"]
        self.gone = False
        self.posts = 0

    def __call__(self, payload: dict[str, Any]) -> bool:
        if self.gone:
            return False
        try:
            self.api.post_to_connection(ConnectionId=self.connection, Data=json.dumps(payload).encode())
        except Exception as err:
            if error_code(err) == "GoneException":
                self.gone = True
                return False
            raise
        self.posts += 1
        return True

    def close(self) -> None:
        """Close the connection from the server side (API Gateway's DeleteConnection)."""
        try:
            self.api.delete_connection(ConnectionId=self.connection)
        except Exception as err:
            if error_code(err) != "GoneException":
                raise
        self.gone = True


def _send_message(rag: Ragline, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One turn: the answer's events posted as the wire encodes them, tokens coalesced; sources come first."""
    request = event["requestContext"]
    post = _Poster(rag, request)
    identity = rag.connections.connection_identity(request["connectionId"])
    refused = _signed_out(rag, identity)
    if refused is not None or identity is None:
        post(error_json(refused or AuthError("not signed in")))
        post.close()
        rag.connections.connection_delete(request["connectionId"])
        return {"statusCode": 401}
    tenant = identity.tenant
    try:
        body = json.loads(event.get("body") or "{}")
        if not isinstance(body, dict) or not isinstance(body.get("question"), str):
            raise InputError('send {"action": "sendMessage", "question": "..."}')
        ask = QueryRequest(question=body["question"], k=body.get("k"), filters=body.get("filters") or {})
    except (ValueError, TypeError, RaglineError) as err:
        post(error_json(err if isinstance(err, RaglineError) else InputError(f"malformed message: {err}")))
        return {"statusCode": 400}
    time_left = None
    if context is not None:  # never run into the Lambda timeout: answer partial before it
        time_left = context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN
    events = _turns(rag).answer(tenant, ask, model=str(body.get("model") or "ragline"),
                                conversation=str(body.get("conversation_id") or ""), time_left=time_left)
    pending: list[str] = []
    last = time.monotonic()
    try:
        for item in events:
            out = item
            if isinstance(item, Token):  # one post per group of tokens at most FLUSH_SECONDS apart
                pending.append(item.text)
                if time.monotonic() - last < FLUSH_SECONDS:
                    continue
                out = Token("".join(pending))
            elif pending and not post(event_json(Token("".join(pending)))):
                break
            pending, last = [], time.monotonic()
            if not post(event_json(out)):
                break
    finally:
        events.close()  # a gone client stops the model here
    if post.gone:
        rag.connections.connection_delete(request["connectionId"])
        log.info(json.dumps({"stage": "websocket", "gone": request["connectionId"], "posts": post.posts}))
        return {"statusCode": 410}
    return {"statusCode": 200}


@cache
def _turns(rag: Ragline) -> Turns:
    return Turns(rag)


@cache
def _authenticator(rag: Ragline) -> Authenticator:
    """One per warm function: its JWKS and its count of failed sign-ins per address outlive an invocation."""
    return Authenticator(rag.settings, rag.registry)
