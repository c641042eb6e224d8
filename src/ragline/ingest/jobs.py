"""The ingestion queue: uploads are saved, queued durably in the registry, and ingested by a worker thread.

A job survives a restart: one left ``running`` by a crash goes back to the queue and runs again; since
ingestion is idempotent by content hash and each batch is one commit, a half-done job never leaves a document
half-written, and finished documents are skipped the second time.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.ingest.bounds import Limits
from ragline.ingest.parsing import CORPUS_SUFFIXES
from ragline.ingest.pipeline import IngestReport, SourceItem, source_items

if TYPE_CHECKING:
    from ragline.compose import Ragline

Listener = Callable[[str, str, dict[str, Any]], None]  # (tenant, job id, progress)
_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str) -> str:
    """A file name without directories or odd characters (it becomes the document id)."""
    base = Path(name.replace("\\", "/")).name.strip() or "upload"
    return _UNSAFE.sub("_", base)[:200]


class JobQueue:
    """Durable ingestion jobs over the registry, worked by one background thread."""

    def __init__(self, rag: Ragline, poll_seconds: float = 0.5) -> None:
        self.rag = rag
        self.uploads = rag.settings.home / "uploads"
        self.poll_seconds = poll_seconds
        self.listeners: list[Listener] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def staging(self) -> tuple[str, Path]:
        """A new job id and the folder its files are saved into before it is queued."""
        job_id = uuid.uuid4().hex
        folder = self.uploads / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return job_id, folder

    def submit(self, job_id: str, tenant: str, files: list[dict[str, Any]]) -> None:
        """Queue saved files (``{"name", "path", "size"}``) for ingestion."""
        self.rag.registry.job_add(job_id, tenant, json.dumps(files))
        self._wake.set()

    def wake(self) -> None:
        """Look at the queue now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Requeue jobs a crash left running (failing those started too often), then start the worker."""
        self.rag.registry.jobs_requeue_running(self.rag.settings.max_job_attempts)
        self.remove_orphans()
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="ragline-ingest", daemon=True)
        self._thread.start()

    def remove_orphans(self) -> int:
        """Delete staging folders no job will read; returns how many.

        An upload cut off by a crash before it was queued has no job; a finished job's files were ingested. A
        failed job keeps its files (it can be retried).
        """
        if not self.uploads.is_dir():
            return 0
        removed = 0
        for folder in self.uploads.iterdir():
            if self.rag.registry.job_status(folder.name) in (None, "done"):
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
                removed += 1
        return removed

    def stop(self) -> None:
        """Stop the worker after the current batch."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self.run_one():
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def run_one(self) -> bool:
        """Claim and run the oldest queued job; False when there was none."""
        claimed = self.rag.registry.job_claim()
        if claimed is None:
            return False
        job_id, tenant, files_json = claimed
        files = json.loads(files_json)
        progress: dict[str, Any] = {"files_total": len(files), "files_done": 0, "documents_done": 0, "chunks": 0,
                                    "failed": []}
        self._report(tenant, job_id, progress, status="running")
        try:
            report = self._ingest(tenant, files, job_id, progress)
        except Exception as err:  # the job stays retryable; nothing was half-written (one commit per batch)
            self._report(tenant, job_id, progress, status="failed", error=f"{type(err).__name__}: {err}")
            return True
        progress.update(files_done=len(files), documents_done=report.documents, chunks=report.chunks,
                        added=report.added, updated=report.updated, unchanged=report.unchanged,
                        failed=[{"doc_id": d, "reason": r} for d, r in report.failed])
        self._report(tenant, job_id, progress, status="done")
        shutil.rmtree(self.uploads / job_id, ignore_errors=True)
        return True

    def _ingest(self, tenant: str, files: list[dict[str, Any]], job_id: str, progress: dict[str, Any]) -> IngestReport:
        rag = self.rag.for_tenant(tenant)
        limits = Limits.of(rag.settings)
        current = {"file": 0}

        def items() -> Iterator[SourceItem]:
            # one file at a time: a file is read when the ingestor reaches it, never all of the job at once
            for number, f in enumerate(files, start=1):
                current["file"] = number
                corpus = f["name"].lower().endswith(CORPUS_SUFFIXES)
                for item in source_items([Path(f["path"])], limits):
                    if not corpus:
                        item.doc_id = f["name"]  # an uploaded file is known by its name, not its staging path
                    yield item

        def tick(done: int, chunks: int) -> None:
            # a JSONL corpus is one file of many documents: files and documents are counted apart
            progress.update(files_done=current["file"] - 1, documents_done=done, chunks=chunks)
            self._report(tenant, job_id, progress)

        return rag.ingestor.run(items(), progress=tick)

    def _report(self, tenant: str, job_id: str, progress: dict[str, Any], *, status: str | None = None,
                error: str | None = None) -> None:
        self.rag.registry.job_update(job_id, status=status, progress=json.dumps(progress), error=error)
        event = {**progress, "status": status or "running", "error": error}
        for listener in list(self.listeners):
            listener(tenant, job_id, event)
