"""Lambda entry points for ingestion (SQS batches of S3 notifications) and the WebSocket API; all call the engine.

Both build one ``Ragline`` per execution environment (from ``RAGLINE_*`` variables, as ``deploy/template.yaml``
sets them) and reuse it across invocations.

* ``ingest``: ``uploads/TENANT/PATH`` objects become documents ``PATH`` of ``TENANT``. Creation ingests (skipped
  when the content hash is unchanged, so redelivery is harmless), removal deletes the chunks. Each event is
  checked against the bucket's current state (an object deleted before its creation event is handled is not
  ingested), so out-of-order delivery converges. A message that fails is reported in ``batchItemFailures``
  alone; SQS redelivers it, and after ``maxReceiveCount`` moves it to the dead-letter queue. The reason is on
  the document's registry row and in the log.
* ``websocket``: the API Gateway WebSocket API (``interfaces/aws/websocket.py``).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote_plus

from ragline.compose import Ragline
from ragline.errors import InputError, RaglineError
from ragline.ingest.bounds import Limits
from ragline.ingest.pipeline import bytes_item, oversized_item
from ragline.interfaces.aws.websocket import rag_from_env, websocket
from ragline.providers.aws.clients import client, error_code
from ragline.seams import DocumentRecord

log = logging.getLogger("ragline.interfaces.aws")
UPLOADS = "uploads/"
__all__ = ["ingest", "websocket"]  # the template's entry points

_rag = rag_from_env  # one engine per execution environment, shared with the WebSocket handler


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
