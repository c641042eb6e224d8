"""The registry's contract, by concern (documents, index facts, answers, keys, jobs, conversations), run over
every implementation: SQLite in a temp folder, and DynamoDB on moto server with the table the SAM template
declares."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragline.providers.aws.dynamo import DynamoDBRegistry
from ragline.providers.local.sqlite import SQLiteRegistry
from ragline.seams import DocumentRecord, Identity, Registry
from ragline.testing.provision import provision

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "template.yaml"


@pytest.fixture(scope="module")
def dynamodb_table(moto_url: str) -> str:
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    stack, _ = provision(moto_url, name=f"contract-{uuid.uuid4().hex[:6]}", region="us-east-1", path=TEMPLATE)
    return stack.refs["Table"]


@pytest.fixture(params=["sqlite", "dynamodb"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        reg: Registry = SQLiteRegistry(tmp_path / "registry.sqlite3", turns=2)
    else:
        request.getfixturevalue("aws_env")
        reg = DynamoDBRegistry(request.getfixturevalue("dynamodb_table"), region="us-east-1",
                               endpoint_url=request.getfixturevalue("moto_url"), turns=2)
    yield reg
    reg.close()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"  # the DynamoDB table is shared by the module's tests


def test_documents(registry: Registry) -> None:
    acme = tenant()
    records = [DocumentRecord(acme, f"guide/{n:02}.md", f"T{n}", f"h{n}", "ready", n, 10 * n, 1.5) for n in range(30)]
    registry.put_many(records)  # over one DynamoDB batch (25)
    assert registry.get(acme, "guide/07.md") == records[7]
    assert registry.get(tenant(), "guide/07.md") is None
    assert len(registry.list(acme)) == 30 and [r.doc_id for r in registry.list(acme, "guide/0")][-1] == "guide/09.md"
    assert registry.hashes(acme)["guide/29.md"] == ("h29", "ready")
    assert registry.delete(acme, "guide/00.md") and not registry.delete(acme, "guide/00.md")


def test_index_facts_and_versions(registry: Registry) -> None:
    acme = tenant()
    assert [registry.bump_index_version(acme) for _ in range(3)] == [1, 2, 3] and registry.index_version(tenant()) == 0
    key = f"embedder-{uuid.uuid4().hex[:6]}"
    registry.set_meta(key, "titan/256")
    assert registry.get_meta(key) == "titan/256" and registry.get_meta("nothing-here") is None


def test_answers_expire(registry: Registry) -> None:
    acme, now = tenant(), time.time()
    registry.answer_put(f"{acme}-k1", acme, '{"text": "hi"}', now + 60)
    registry.answer_put(f"{acme}-k2", acme, '{"text": "old"}', now - 5)
    assert registry.answer_get(f"{acme}-k1", now) == '{"text": "hi"}'
    assert registry.answer_get(f"{acme}-k2", now) is None  # expired, even before DynamoDB's lazy TTL deletes it
    live, expired = registry.answer_count(now)
    assert live >= 1 and expired >= 1
    assert registry.answer_clear(acme) == 2


def test_keys(registry: Registry) -> None:
    acme, key_id, key_hash = tenant(), uuid.uuid4().hex, uuid.uuid4().hex
    registry.key_add(key_id, acme, "ci", key_hash)
    assert registry.key_tenant(key_hash) == acme
    assert any(row[0] == key_id and row[1] == acme for row in registry.key_list())
    assert registry.key_revoke(key_id) and registry.key_tenant(key_hash) is None and not registry.key_revoke(key_id)


def test_jobs(registry: Registry) -> None:
    acme, job = tenant(), uuid.uuid4().hex
    while registry.job_claim() is not None:  # the shared table may hold another test's job
        pass
    registry.job_add(job, acme, "[]")
    assert registry.jobs_waiting() >= 1
    assert registry.job_claim() == (job, acme, "[]") and registry.job_claim() is None  # claimed once
    assert registry.jobs_requeue_running(3) >= 1  # a crash left it running: queued again
    assert registry.job_claim() == (job, acme, "[]")
    registry.job_update(job, status="failed", progress='{"files_done": 1}', error="corrupt")
    found = registry.job_get(acme, job)
    assert found is not None and found["status"] == "failed" and found["error"] == "corrupt"
    assert registry.job_get(tenant(), job) is None
    assert registry.job_retry(acme, job) and registry.job_claim() == (job, acme, "[]")


def test_a_job_interrupted_too_often_is_failed_not_requeued(registry: Registry) -> None:
    """A poison pill: a file that kills the process would otherwise run again at every start."""
    acme, job = tenant(), uuid.uuid4().hex
    registry.jobs_requeue_running(100)
    while (other := registry.job_claim()) is not None:  # another test's jobs are finished, not left running
        registry.job_update(other[0], status="done")
    registry.job_add(job, acme, "[]")
    for _ in range(2):
        assert registry.job_claim() == (job, acme, "[]")
        registry.jobs_requeue_running(3)  # started twice, interrupted twice: still queued
    assert registry.job_claim() == (job, acme, "[]")  # the third start, interrupted as well
    registry.jobs_requeue_running(3)
    found = registry.job_get(acme, job)
    assert found is not None and found["status"] == "failed" and "interrupted 3 times" in str(found["error"])
    assert registry.job_claim() is None
    assert registry.job_retry(acme, job)  # the user may still decide to try again, with a fresh count
    assert registry.job_claim() == (job, acme, "[]") and registry.job_get(acme, job)["attempts"] == 1  # type: ignore[index]


def test_conversations_keep_the_last_turns_per_tenant(registry: Registry) -> None:
    acme, other = tenant(), tenant()
    for n in range(3):
        registry.remember(acme, "c1", f"question {n}", f"answer {n}")
        time.sleep(0.01)  # SQLite orders turns by time
    history = registry.history(acme, "c1")
    assert [(m.role, m.content) for m in history] == [
        ("user", "question 1"), ("assistant", "answer 1"), ("user", "question 2"), ("assistant", "answer 2")]
    assert registry.history(other, "c1") == () and registry.history(acme, "c2") == ()


def test_connections_on_dynamodb(request: pytest.FixtureRequest) -> None:
    """API Gateway WebSocket connections live in DynamoDB only (a Lambda keeps no state between invocations)."""
    request.getfixturevalue("aws_env")
    reg = DynamoDBRegistry(request.getfixturevalue("dynamodb_table"), region="us-east-1",
                           endpoint_url=request.getfixturevalue("moto_url"))
    reg.connection_put("c1", Identity("acme", "api_key", key_hash="abc"))
    assert reg.connection_identity("c1") == Identity("acme", "api_key", key_hash="abc")
    reg.connection_put("c2", Identity("jwt:u1", "jwt", expires_at=1_900_000_000.5))
    assert reg.connection_identity("c2") == Identity("jwt:u1", "jwt", expires_at=1_900_000_000.5)
    reg.connection_delete("c1")
    assert reg.connection_identity("c1") is None
