"""The SQLite registry: documents, index facts, cached answers, API keys, jobs and conversations in one file.

Rows are written after the store commits, so a crash in between leaves a document that the next ingest
re-does (content hash differs from the registry's), never a registry row without its chunks.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import time
from pathlib import Path

from ragline.seams import DocumentRecord, interrupted_reason
from ragline.types import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    tenant TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL,
    error TEXT,
    PRIMARY KEY (tenant, doc_id)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    files TEXT NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    tenant TEXT NOT NULL,
    conversation TEXT NOT NULL,
    at REAL NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (tenant, conversation, at);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""


class SQLiteRegistry:
    """Documents and index facts in one SQLite file (WAL, safe across threads of one process)."""

    def __init__(self, path: Path | str, *, turns: int = 4) -> None:
        self.path = Path(path)
        self.turns = turns  # conversation turns kept (question and answer each)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def get(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """One document's row."""
        with self._lock:
            row = self._db().execute(
                "SELECT * FROM documents WHERE tenant = ? AND doc_id = ?", (tenant, doc_id)
            ).fetchone()
        return DocumentRecord(*row) if row else None

    def hashes(self, tenant: str) -> dict[str, tuple[str, str]]:
        """doc_id → (sha256, status) for every document of a tenant."""
        with self._lock:
            rows = self._db().execute(
                "SELECT doc_id, sha256, status FROM documents WHERE tenant = ?", (tenant,)
            ).fetchall()
        return {d: (h, s) for d, h, s in rows}

    def put_many(self, records: list[DocumentRecord]) -> None:
        """Insert or replace rows, in one transaction."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.tenant, r.doc_id, r.title, r.sha256, r.status, r.chunks, r.bytes, r.ingested_at, r.error)
                    for r in records
                ],
            )
            db.execute("COMMIT")

    def delete(self, tenant: str, doc_id: str) -> bool:
        """Remove a row; False when there was none."""
        with self._lock:
            cur = self._db().execute("DELETE FROM documents WHERE tenant = ? AND doc_id = ?", (tenant, doc_id))
        return cur.rowcount > 0

    def list(self, tenant: str, prefix: str = "") -> list[DocumentRecord]:
        """A tenant's documents, by id."""
        with self._lock:
            rows = self._db().execute(
                "SELECT * FROM documents WHERE tenant = ? AND doc_id LIKE ? ESCAPE '\\' ORDER BY doc_id",
                (tenant, prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
            ).fetchall()
        return [DocumentRecord(*r) for r in rows]

    def get_meta(self, key: str) -> str | None:
        """A fact about the index (for example which embedder built it)."""
        with self._lock:
            row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the index."""
        with self._lock:
            self._db().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def index_version(self, tenant: str) -> int:
        """A counter that every ingest or delete for the tenant bumps (part of the answer-cache key)."""
        return int(self.get_meta(f"index_version:{tenant}") or 0)

    def bump_index_version(self, tenant: str) -> int:
        """Mark the tenant's index as changed: cached answers for the old version are never served again."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT value FROM meta WHERE key = ?", (f"index_version:{tenant}",)).fetchone()
            version = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"index_version:{tenant}", str(version)))
            db.execute("DELETE FROM answers WHERE tenant = ?", (tenant,))
            db.execute("COMMIT")
        return version

    def answer_get(self, key: str, at: float) -> str | None:
        """A cached answer's JSON, unless expired."""
        with self._lock:
            row = self._db().execute(
                "SELECT value FROM answers WHERE key = ? AND expires_at > ?", (key, at)
            ).fetchone()
        return row[0] if row else None

    def answer_put(self, key: str, tenant: str, value: str, expires_at: float) -> None:
        """Store an answer's JSON until ``expires_at``."""
        with self._lock:
            self._db().execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (key, tenant, value, expires_at))

    def answer_clear(self, tenant: str | None = None) -> int:
        """Drop cached answers (of one tenant, or all); returns how many."""
        with self._lock:
            if tenant is None:
                cur = self._db().execute("DELETE FROM answers")
            else:
                cur = self._db().execute("DELETE FROM answers WHERE tenant = ?", (tenant,))
        return cur.rowcount

    def answer_count(self, at: float) -> tuple[int, int]:
        """(live, expired) cached answers."""
        with self._lock:
            live, expired = self._db().execute(
                "SELECT COALESCE(SUM(expires_at > ?), 0), COALESCE(SUM(expires_at <= ?), 0) FROM answers", (at, at)
            ).fetchone()
        return int(live), int(expired)

    # API keys: only a hash is stored; the key itself is shown once, at creation.
    def key_add(self, key_id: str, tenant: str, name: str, key_hash: str) -> None:
        """Record a new API key."""
        with self._lock:
            self._db().execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)", (key_id, tenant, name, key_hash, now())
            )

    def key_tenant(self, key_hash: str) -> str | None:
        """The tenant of a live key, by hash."""
        with self._lock:
            row = self._db().execute(
                "SELECT tenant FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (key_hash,)
            ).fetchone()
        return row[0] if row else None

    def key_list(self) -> builtins.list[tuple[str, str, str, float, float | None]]:
        """(id, tenant, name, created_at, revoked_at) of every key."""
        with self._lock:
            rows = self._db().execute(
                "SELECT id, tenant, name, created_at, revoked_at FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [tuple(r) for r in rows]

    def key_revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no live key has that id."""
        with self._lock:
            cur = self._db().execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now(), key_id)
            )
        return cur.rowcount > 0

    # Ingestion jobs: a durable queue.
    def job_add(self, job_id: str, tenant: str, files: str) -> None:
        """Queue a job (``files`` is JSON)."""
        with self._lock:
            self._db().execute(
                "INSERT INTO jobs (id, tenant, status, files, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?)",
                (job_id, tenant, files, now(), now()),
            )

    def job_claim(self) -> tuple[str, str, str] | None:
        """Take the oldest queued job: (id, tenant, files JSON), now marked running."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id, tenant, files FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
            if row:
                db.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                    (now(), row[0]),
                )
            db.execute("COMMIT")
        return (row[0], row[1], row[2]) if row else None

    def job_update(self, job_id: str, *, status: str | None = None, progress: str | None = None,
                   error: str | None = None) -> None:
        """Record progress or an outcome."""
        with self._lock:
            self._db().execute(
                "UPDATE jobs SET status = COALESCE(?, status), progress = COALESCE(?, progress), "
                "error = COALESCE(?, error), updated_at = ? WHERE id = ?",
                (status, progress, error, now(), job_id),
            )

    def job_get(self, tenant: str, job_id: str) -> dict[str, object] | None:
        """A tenant's job, as a dict."""
        with self._lock:
            cur = self._db().execute("SELECT * FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return dict(zip(names, row, strict=True)) if row else None

    def job_status(self, job_id: str) -> str | None:
        """Any tenant's job's status; None when there is no such job."""
        with self._lock:
            row = self._db().execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return str(row[0]) if row else None

    def job_retry(self, tenant: str, job_id: str) -> bool:
        """Queue a failed job again; False unless the tenant has a failed job with that id."""
        with self._lock:
            cur = self._db().execute(
                "UPDATE jobs SET status = 'queued', error = NULL, attempts = 0, updated_at = ? "
                "WHERE id = ? AND tenant = ? AND status = 'failed'", (now(), job_id, tenant))
        return cur.rowcount > 0

    def jobs_waiting(self) -> int:
        """Jobs queued or running (the queue depth)."""
        with self._lock:
            row = self._db().execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()
        return int(row[0])

    def jobs_requeue_running(self, max_attempts: int) -> int:
        """After a crash or restart: jobs left running go back to the queue, or fail if started too often."""
        with self._lock:
            db = self._db()
            db.execute("UPDATE jobs SET status = 'failed', error = ?, updated_at = ? "
                       "WHERE status = 'running' AND attempts >= ?",
                       (interrupted_reason(max_attempts), now(), max_attempts))
            cur = db.execute("UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'", (now(),))
        return cur.rowcount

    def history(self, tenant: str, conversation: str) -> tuple[Message, ...]:
        """The conversation's last turns, oldest first."""
        with self._lock:
            rows = self._db().execute(
                "SELECT question, answer FROM turns WHERE tenant = ? AND conversation = ? ORDER BY at DESC LIMIT ?",
                (tenant, conversation, self.turns)).fetchall()
        return tuple(m for q, a in reversed(rows) for m in (Message("user", q), Message("assistant", a)))

    def remember(self, tenant: str, conversation: str, question: str, answer: str) -> None:
        """Append a turn; turns beyond the last few are deleted."""
        with self._lock:
            db = self._db()
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?)", (tenant, conversation, now(), question, answer))
            db.execute("DELETE FROM turns WHERE tenant = ? AND conversation = ? AND at NOT IN (SELECT at FROM turns "
                       "WHERE tenant = ? AND conversation = ? ORDER BY at DESC LIMIT ?)",
                       (tenant, conversation, tenant, conversation, self.turns))

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def now() -> float:
    """Wall-clock seconds, for ingestion times."""
    return time.time()
