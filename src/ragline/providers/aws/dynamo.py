"""The DynamoDB registry: documents, index facts, answers, keys, jobs, connections, conversations in one table.

The table is ``deploy/template.yaml``'s ``Table``: string keys ``pk``/``sk``, TTL on ``expires_at``.

Item layout (single-table design, every access is a GetItem or a Query on one partition, except admin listings):

=========================  =================  =====================================================
pk                         sk                 holds
=========================  =================  =====================================================
``doc#{tenant}``           doc_id             a document's hash, status, chunk count, size, error
``meta``                   key                facts about the index (which embedder built it)
``version#{tenant}``       ``-``              the tenant's index version (atomic ADD)
``answer#{key}``           ``-``              a cached answer (JSON) with ``expires_at`` (TTL)
``apikey#{sha256}``        ``-``              an API key's tenant
``job#{id}``               ``-``              an ingestion job
``conn#{connection id}``   ``-``              a WebSocket connection's tenant, with ``expires_at`` (TTL)
``conv#{tenant}#{id}``     ``-``              a conversation's recent turns, with ``expires_at`` (TTL)
=========================  =================  =====================================================

DynamoDB's TTL deletes expired items lazily (within days), so reads also compare ``expires_at``.
"""

from __future__ import annotations

import builtins
import json
import math
import time
from collections.abc import Iterator
from decimal import Decimal
from functools import cached_property
from typing import Any

from ragline.errors import StoreError
from ragline.providers.aws.clients import client
from ragline.resilience import RetryPolicy
from ragline.seams import DocumentRecord, Identity, interrupted_reason
from ragline.types import Message

CONNECTION_TTL = 2 * 3600  # API Gateway closes WebSocket connections after two hours
_DOC_FIELDS = ("title", "sha256", "status", "chunks", "bytes", "ingested_at", "error")


class _Throttled(StoreError):
    """Some items of a batch write came back unprocessed."""


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class DynamoDBRegistry:
    """The Registry protocol over one DynamoDB table."""

    def __init__(self, table: str, *, region: str | None = None, endpoint_url: str | None = None,
                 timeout: float = 10.0, turns: int = 4, policy: RetryPolicy | None = None) -> None:
        self.table = table
        self.policy = policy or RetryPolicy(max_attempts=8, base_delay=0.05, max_delay=2.0)
        self.turns = turns  # conversation turns kept (question and answer each)
        self._region, self._endpoint_url, self._timeout = region, endpoint_url, timeout

    def _db(self) -> Any:
        return client("dynamodb", self._region, self._endpoint_url, self._timeout)

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._db(), operation)(TableName=self.table, **params)
        except (ClientError, BotoCoreError) as err:
            raise StoreError(f"DynamoDB table {self.table!r}: {operation} failed: {err}") from err

    @cached_property
    def _codec(self) -> tuple[Any, Any]:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        return TypeSerializer(), TypeDeserializer()

    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._codec[0].serialize(Decimal(str(v)) if isinstance(v, float) else v)
                for k, v in item.items() if v is not None}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._codec[1].deserialize(v)) for k, v in item.items()}

    def _key(self, pk: str, sk: str = "-") -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _get(self, pk: str, sk: str = "-") -> dict[str, Any] | None:
        found = self._call("get_item", Key=self._key(pk, sk), ConsistentRead=True).get("Item")
        return self._decode(found) if found else None

    def _put(self, item: dict[str, Any], **params: Any) -> None:
        self._call("put_item", Item=self._encode(item), **params)

    def _query(self, pk: str, prefix: str = "") -> Iterator[dict[str, Any]]:
        condition, values = "pk = :pk", {":pk": {"S": pk}}
        if prefix:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        return self._pages("query", KeyConditionExpression=condition, ExpressionAttributeValues=values,
                           ConsistentRead=True)

    def _scan(self, pk_prefix: str) -> Iterator[dict[str, Any]]:
        return self._pages("scan", FilterExpression="begins_with(pk, :p)",
                           ExpressionAttributeValues={":p": {"S": pk_prefix}})

    def _pages(self, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query or Scan, following ``LastEvaluatedKey`` across pages."""
        while True:
            page = self._call(operation, **params)
            yield from (self._decode(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _delete_keys(self, keys: builtins.list[tuple[str, str]]) -> None:
        self._batch([{"DeleteRequest": {"Key": self._key(pk, sk)}} for pk, sk in keys])

    def _batch(self, requests: builtins.list[dict[str, Any]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(requests), 25):  # BatchWriteItem takes 25 requests at most
            pending: dict[str, Any] = {self.table: requests[start:start + 25]}

            def write() -> None:
                nonlocal pending
                try:
                    pending = self._db().batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                except (ClientError, BotoCoreError) as err:
                    raise StoreError(f"DynamoDB table {self.table!r}: batch write failed: {err}") from err
                if pending:  # throttled items come back unprocessed: written again after the backoff
                    raise _Throttled(f"DynamoDB table {self.table!r}: writes stayed throttled; try again")

            self.policy.run(write, transient=lambda err: isinstance(err, _Throttled))

    # Documents.
    def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """One document's row."""
        item = self._get(f"doc#{tenant}", doc_id)
        return self._record(tenant, item) if item else None

    @staticmethod
    def _record(tenant: str, item: dict[str, Any]) -> DocumentRecord:
        return DocumentRecord(tenant, item["sk"], *(item.get(f) for f in _DOC_FIELDS))  # type: ignore[arg-type]

    def hashes(self, tenant: str) -> dict[str, tuple[str, str]]:
        """doc_id → (sha256, status) for every document of a tenant."""
        return {i["sk"]: (i["sha256"], i["status"]) for i in self._query(f"doc#{tenant}")}

    def put_many(self, records: builtins.list[DocumentRecord]) -> None:
        """Insert or replace rows."""
        self._batch([
            {"PutRequest": {"Item": self._encode(
                {"pk": f"doc#{r.tenant}", "sk": r.doc_id, **{f: getattr(r, f) for f in _DOC_FIELDS}}
            )}} for r in records
        ])

    def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove a row; False when there was none."""
        old = self._call("delete_item", Key=self._key(f"doc#{tenant}", doc_id), ReturnValues="ALL_OLD")
        return bool(old.get("Attributes"))

    def list(self, tenant: str, prefix: str = "") -> builtins.list[DocumentRecord]:
        """A tenant's documents, by id."""
        return [self._record(tenant, i) for i in self._query(f"doc#{tenant}", prefix)]

    # Index facts and versions.
    def get_meta(self, key: str) -> str | None:
        """A fact about the index."""
        item = self._get("meta", key)
        return str(item["value"]) if item else None

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the index."""
        self._put({"pk": "meta", "sk": key, "value": value})

    def index_version(self, tenant: str) -> int:
        """The tenant's index version (part of the answer-cache key)."""
        item = self._get(f"version#{tenant}")
        return int(item["version"]) if item else 0

    def bump_index_version(self, tenant: str) -> int:
        """Atomically count one more change; answers cached under the old version are never read again."""
        out = self._call("update_item", Key=self._key(f"version#{tenant}"), UpdateExpression="ADD version :one",
                         ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW")
        return int(out["Attributes"]["version"]["N"])

    # The answer cache.
    def answer_get(self, key: str, at: float) -> str | None:
        """A cached answer's JSON, unless expired."""
        item = self._get(f"answer#{key}")
        return str(item["value"]) if item and item["expires_at"] > at else None

    def answer_put(self, key: str, tenant: str, value: str, expires_at: float) -> None:
        """Store an answer's JSON until ``expires_at`` (DynamoDB's TTL removes it later)."""
        self._put({"pk": f"answer#{key}", "sk": "-", "tenant": tenant, "value": value,
                   "expires_at": int(expires_at) + 1})

    def answer_clear(self, tenant: str | None = None) -> int:
        """Drop cached answers (a scan: an administrative operation)."""
        keys = [(i["pk"], i["sk"]) for i in self._scan("answer#") if tenant is None or i.get("tenant") == tenant]
        self._delete_keys(keys)
        return len(keys)

    def answer_count(self, at: float) -> tuple[int, int]:
        """(live, expired) cached answers."""
        expiries = [i["expires_at"] for i in self._scan("answer#")]
        live = sum(1 for e in expiries if e > at)
        return live, len(expiries) - live

    # API keys (only a hash is stored).
    def key_add(self, key_id: str, tenant: str, name: str, key_hash: str) -> None:
        """Record a new API key."""
        self._put({"pk": f"apikey#{key_hash}", "sk": "-", "id": key_id, "tenant": tenant, "name": name,
                   "created_at": time.time()})

    def key_tenant(self, key_hash: str) -> str | None:
        """The tenant of a live key, by hash."""
        item = self._get(f"apikey#{key_hash}")
        return str(item["tenant"]) if item and "revoked_at" not in item else None

    def key_list(self) -> builtins.list[tuple[str, str, str, float, float | None]]:
        """(id, tenant, name, created_at, revoked_at) of every key."""
        rows = [(i["id"], i["tenant"], i["name"], i["created_at"], i.get("revoked_at")) for i in self._scan("apikey#")]
        return sorted(rows, key=lambda r: r[3])

    def key_revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no live key has that id."""
        for item in self._scan("apikey#"):
            if item["id"] == key_id and "revoked_at" not in item:
                self._put({**item, "revoked_at": time.time()})
                return True
        return False

    # Ingestion jobs (on AWS, S3 notifications through SQS are the main path; these serve HTTP uploads).
    def job_add(self, job_id: str, tenant: str, files: str) -> None:
        """Queue a job (``files`` is JSON)."""
        now = time.time()
        self._put({"pk": f"job#{job_id}", "sk": "-", "id": job_id, "tenant": tenant, "status": "queued",
                   "files": files, "progress": "{}", "attempts": 0, "created_at": now, "updated_at": now})

    def job_claim(self) -> tuple[str, str, str] | None:
        """Take the oldest queued job; a conditional write makes sure only one worker gets it."""
        from botocore.exceptions import ClientError

        for item in sorted(self._scan("job#"), key=lambda i: i["created_at"]):
            if item["status"] != "queued":
                continue
            try:
                self._db().update_item(
                    TableName=self.table, Key=self._key(item["pk"]), ConditionExpression="#s = :queued",
                    UpdateExpression="SET #s = :running, updated_at = :now ADD attempts :one",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":queued": {"S": "queued"}, ":running": {"S": "running"},
                                               ":now": {"N": str(time.time())}, ":one": {"N": "1"}},
                )
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    continue  # another worker took it
                raise StoreError(f"DynamoDB table {self.table!r}: claiming a job failed: {err}") from err
            return item["id"], item["tenant"], item["files"]
        return None

    def job_update(self, job_id: str, *, status: str | None = None, progress: str | None = None,
                   error: str | None = None) -> None:
        """Record progress or an outcome."""
        item = self._get(f"job#{job_id}")
        if item is None:
            return
        changes = {"status": status, "progress": progress, "error": error}
        self._put({**item, **{k: v for k, v in changes.items() if v is not None}, "updated_at": time.time()})

    def job_get(self, tenant: str, job_id: str) -> dict[str, object] | None:
        """A tenant's job, as a dict."""
        item = self._get(f"job#{job_id}")
        if item is None or item["tenant"] != tenant:
            return None
        return {k: v for k, v in item.items() if k not in ("pk", "sk")}

    def job_status(self, job_id: str) -> str | None:
        """Any tenant's job's status; None when there is no such job."""
        item = self._get(f"job#{job_id}")
        return str(item["status"]) if item else None

    def job_retry(self, tenant: str, job_id: str) -> bool:
        """Queue a failed job again."""
        item = self.job_get(tenant, job_id)
        if item is None or item["status"] != "failed":
            return False
        self._put({**item, "pk": f"job#{job_id}", "sk": "-", "status": "queued", "attempts": 0,
                   "updated_at": time.time()})
        return True

    def jobs_waiting(self) -> int:
        """Jobs queued or running."""
        return sum(1 for i in self._scan("job#") if i["status"] in ("queued", "running"))

    def jobs_requeue_running(self, max_attempts: int) -> int:
        """Jobs left running go back to the queue, or fail if they were started ``max_attempts`` times."""
        running = [i for i in self._scan("job#") if i["status"] == "running"]
        requeued = 0
        for item in running:
            if int(item.get("attempts", 0)) >= max_attempts:
                self.job_update(item["id"], status="failed", error=interrupted_reason(max_attempts))
            else:
                self.job_update(item["id"], status="queued")
                requeued += 1
        return requeued

    # WebSocket connections.
    def connection_put(self, connection_id: str, identity: Identity) -> None:
        """Record who opened a WebSocket connection (and what keeps their credential valid)."""
        self._put({"pk": f"conn#{connection_id}", "sk": "-", "tenant": identity.tenant, "method": identity.method,
                   "key_hash": identity.key_hash, "connected_at": time.time(),
                   "token_expires_at": 0 if math.isinf(identity.expires_at) else identity.expires_at,
                   "expires_at": int(time.time()) + CONNECTION_TTL})

    def connection_identity(self, connection_id: str) -> Identity | None:
        """Who signed in on a live connection."""
        item = self._get(f"conn#{connection_id}")
        if not item or item["expires_at"] <= time.time():
            return None
        expires = float(item.get("token_expires_at") or 0)
        return Identity(str(item["tenant"]), str(item.get("method", "none")), str(item.get("key_hash", "")),
                        expires or math.inf)

    def connection_delete(self, connection_id: str) -> None:
        """Forget a closed connection."""
        self._call("delete_item", Key=self._key(f"conn#{connection_id}"))

    # Conversations carried over WebSocket turns (Lambda keeps no state between invocations).
    def history(self, tenant: str, conversation: str) -> tuple[Message, ...]:
        """The recent turns of a conversation, oldest first."""
        item = self._get(f"conv#{tenant}#{conversation}")
        if not item or item["expires_at"] <= time.time():
            return ()
        return tuple(Message(m["role"], m["content"]) for m in json.loads(item["turns"]))

    def remember(self, tenant: str, conversation: str, question: str, answer: str) -> None:
        """Append a turn, keeping the last few; the conversation expires a day after its last turn."""
        turns = [{"role": m.role, "content": m.content} for m in self.history(tenant, conversation)]
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        self._put({"pk": f"conv#{tenant}#{conversation}", "sk": "-", "turns": json.dumps(turns[-2 * self.turns:]),
                   "expires_at": int(time.time()) + 86400})

    def close(self) -> None:
        """Nothing to release (boto3 clients are shared)."""

