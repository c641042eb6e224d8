"""The ingest path: sources → parse → chunk → embed → store (+ registry rows), idempotent by content hash."""

from __future__ import annotations

import glob
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from ragline.errors import InputError, ParseError
from ragline.ingest.bounds import Limits, bounded_lines, check_text
from ragline.ingest.chunking import Chunker
from ragline.ingest.originals import Originals, kept
from ragline.ingest.parsing import CORPUS_SUFFIXES, markdown_sections, parse
from ragline.seams import Catalog, DocumentRecord, Embedder, Store
from ragline.types import Chunk, ParsedDocument, Section, Vectors

BATCH_CHUNKS = 512
# Bump when parsing or chunking changes what a document becomes: every document is then re-ingested.
PIPELINE_VERSION = "1"
# A format whose parser changed what it yields: its files (and only they) are ingested again once.
# 2: PDF and DOCX titles that are identifiers or "Microsoft Word - x.docx" give way to the heading or file name.
FORMAT_VERSIONS = {".pdf": "2", ".docx": "2"}


@dataclass(slots=True)
class SourceItem:
    """One document to ingest: its id, a content hash, and how to parse it."""

    doc_id: str
    sha256: str
    size: int
    load: Callable[[], ParsedDocument]
    original: Callable[[], bytes] | None = None  # the file, for documents whose original is kept (PDFs)


@dataclass(slots=True)
class IngestReport:
    """What one ingest run did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0

    @property
    def documents(self) -> int:
        """Documents seen."""
        return self.added + self.updated + self.unchanged + len(self.failed)

    def summary(self) -> str:
        """One line for the terminal or a log."""
        rate = self.chunks / self.seconds if self.seconds else 0.0
        return (
            f"{self.documents} documents: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed; {self.chunks} chunks "
            f"in {self.seconds:.1f} s ({rate:.0f} chunks/s)"
        )


def human_size(n: int) -> str:
    """Bytes as a short human figure (B, KiB, MiB, GiB)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def doc_id_for(path: Path) -> str:
    """A file's document id: its path relative to the working folder, or absolute when it lies outside."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return resolved.as_posix()


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Files named by paths, folders (recursively) and globs, in a stable order."""
    files: list[Path] = []
    for pattern in patterns:
        matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))] or [Path(pattern)]
        for path in matches:
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
            elif path.exists():
                files.append(path)
            else:
                raise InputError(f"no such file or folder: {pattern}")
    return list(dict.fromkeys(files))


def _record_doc(record: dict[str, object], doc_id: str) -> ParsedDocument:
    title = str(record.get("title") or "")
    text = str(record.get("text") or "")
    if doc_id.endswith((".md", ".markdown")):
        h1, sections = markdown_sections(text)
        return ParsedDocument(title or h1 or doc_id, sections)
    return ParsedDocument(title or doc_id, [Section(text.strip())] if text.strip() else [])


def failed_item(doc_id: str, err: ParseError) -> SourceItem:
    """An item that fails with ``err`` when loaded, so the run records the reason and goes on."""

    def refuse() -> ParsedDocument:
        raise err

    return SourceItem(doc_id, f"failed:{doc_id}", 0, refuse)


def _corpus_items(path: Path, limits: Limits) -> Iterator[SourceItem]:
    lines = bounded_lines(path, limits)
    while True:
        try:
            n, line = next(lines)
        except StopIteration:
            return
        except ParseError as err:  # a bomb or a broken stream: the records before it stand, the rest is refused
            yield failed_item(path.name, err)
            return
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            doc_id = str(record["_id"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ParseError(f"{path}:{n}: not a {{'_id','title','text'}} JSON object ({err})") from err
        raw = line.encode()

        def load(record: dict[str, object] = record, doc_id: str = doc_id) -> ParsedDocument:
            return check_text(_record_doc(record, doc_id), doc_id, limits)

        yield SourceItem(doc_id, hashlib.sha256(raw).hexdigest(), len(raw), load)


def oversized_item(doc_id: str, name: str, size: int, max_bytes: int) -> SourceItem:
    """An item for a file over the size limit: never read, it fails with the reason (and is recorded so)."""

    def refuse() -> ParsedDocument:
        raise ParseError(
            f"{name}: {human_size(size)} is over the {human_size(max_bytes)} limit (RAGLINE_MAX_FILE_BYTES)"
        )

    return SourceItem(doc_id, f"size:{size}", size, refuse)


def bytes_item(doc_id: str, name: str, data: bytes, limits: Limits) -> SourceItem:
    """An item for a file's bytes, parsed by its name's suffix."""
    return SourceItem(doc_id, hashlib.sha256(data).hexdigest(), len(data), lambda: parse(data, name, limits),
                      (lambda: data) if kept(name) else None)


def _file_item(path: Path, limits: Limits) -> SourceItem:
    """An item for a file on disk: hashed as a stream now, read only when it is parsed (one file at a time)."""
    size = path.stat().st_size
    doc_id = doc_id_for(path)
    if size > limits.file_bytes:
        return oversized_item(doc_id, path.name, size, limits.file_bytes)
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return SourceItem(doc_id, digest, size, lambda: parse(path.read_bytes(), path.name, limits),
                      path.read_bytes if kept(path.name) else None)


def source_items(paths: Sequence[Path], limits: Limits | None = None) -> Iterator[SourceItem]:
    """One item per file, or per record of a JSONL corpus, produced as they are consumed."""
    limits = limits or Limits()
    for path in paths:
        if path.name.lower().endswith(CORPUS_SUFFIXES):
            yield from _corpus_items(path, limits)
        else:
            yield _file_item(path, limits)


def count_items(paths: Sequence[Path], limits: Limits | None = None) -> int:
    """How many documents ``source_items`` will yield (JSONL lines counted), for progress bars."""
    total = 0
    for path in paths:
        if path.name.lower().endswith(CORPUS_SUFFIXES):
            try:
                total += sum(1 for _, line in bounded_lines(path, limits or Limits()) if line.strip())
            except ParseError:  # ingestion reports it; the count is only for a progress bar
                total += 1
        else:
            total += 1
    return total


Progress = Callable[[int, int], None]  # (documents done, chunks written)


class Ingestor:
    """Runs the ingest path for one tenant over injected parts."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Catalog,
        embedder: Embedder,
        chunker: Chunker,
        tenant: str,
        language: str,
        batch_size: int = 32,
        originals: Originals | None = None,
    ) -> None:
        self.store, self.registry, self.embedder, self.chunker = store, registry, embedder, chunker
        self.originals = originals
        self.tenant, self.language, self.batch_size = tenant, language, batch_size
        self.fingerprint = f"{PIPELINE_VERSION}:{chunker.tokens}:{chunker.overlap}:{embedder.name}"

    def _version_hash(self, item: SourceItem) -> str:
        """The content hash with how it is processed (settings, pipeline, the format's parser): a change re-ingests."""
        suffix = PurePath(item.doc_id).suffix.lower()
        parser = f":{suffix}{FORMAT_VERSIONS[suffix]}" if suffix in FORMAT_VERSIONS else ""
        return hashlib.sha256(f"{item.sha256}:{self.fingerprint}{parser}".encode()).hexdigest()

    def run(
        self, items: Iterator[SourceItem] | Sequence[SourceItem], *, tags: tuple[str, ...] = (),
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest every item; bad ones are reported and skipped, the rest go on."""
        started = time.perf_counter()
        report = IngestReport()
        known = self.registry.hashes(self.tenant)
        batch: list[tuple[SourceItem, ParsedDocument, list[Chunk]]] = []
        pending_chunks = 0
        for done, item in enumerate(items, start=1):
            item.sha256 = self._version_hash(item)
            previous = known.get(item.doc_id)
            if previous is not None and previous == (item.sha256, "ready"):
                report.unchanged += 1
            else:
                try:
                    doc = item.load()
                    chunks = self.chunker.chunk(
                        doc, doc_id=item.doc_id, content_hash=item.sha256, tenant=self.tenant,
                        language=self.language, tags=tags,
                    )
                except ParseError as err:
                    self._fail(item, str(err), report)
                    chunks = []
                if not chunks and (not report.failed or report.failed[-1][0] != item.doc_id):
                    self._fail(item, f"{item.doc_id}: no text found", report)
                elif chunks:
                    batch.append((item, doc, chunks))
                    pending_chunks += len(chunks)
                if pending_chunks >= BATCH_CHUNKS:
                    self._write(batch, known, report)
                    batch, pending_chunks = [], 0
            if progress is not None:
                progress(done, report.chunks + pending_chunks)
        self._write(batch, known, report)
        if report.added or report.updated:
            self.store.refresh_indexes()
            self.registry.bump_index_version(self.tenant)
        report.seconds = time.perf_counter() - started
        return report

    def _fail(self, item: SourceItem, reason: str, report: IngestReport) -> None:
        report.failed.append((item.doc_id, reason))
        # A failed new version leaves the previous good one in place: only unknown documents get a row.
        if self.registry.get(self.tenant, item.doc_id) is None:
            self.registry.put_many(
                [DocumentRecord(self.tenant, item.doc_id, "", item.sha256, "failed", 0, item.size, time.time(), reason)]
            )

    def _write(
        self,
        batch: list[tuple[SourceItem, ParsedDocument, list[Chunk]]],
        known: dict[str, tuple[str, str]],
        report: IngestReport,
    ) -> None:
        if not batch:
            return
        chunks = [c for _, _, cs in batch for c in cs]
        vectors = embed_in_batches(self.embedder, [c.context_text() for c in chunks], self.batch_size)
        fresh = all(known.get(item.doc_id, ("", "failed"))[1] != "ready" for item, _, _ in batch)
        doc_ids = [item.doc_id for item, _, _ in batch]
        self.store.replace_documents(self.tenant, doc_ids, chunks, vectors, fresh=fresh)
        stamp = time.time()
        self.registry.put_many(
            [
                DocumentRecord(self.tenant, item.doc_id, doc.title, item.sha256, "ready", len(cs), item.size, stamp)
                for item, doc, cs in batch
            ]
        )
        for item, _, cs in batch:
            if self.originals is not None and item.original is not None:
                self.originals.put(self.tenant, item.doc_id, item.original())
            if known.get(item.doc_id, ("", ""))[1] == "ready":
                report.updated += 1
            else:
                report.added += 1
            known[item.doc_id] = (item.sha256, "ready")
            report.chunks += len(cs)

    def remove(self, doc_id: str) -> bool:
        """Delete a document's chunks and its registry row; False when the tenant has no such document."""
        if self.registry.get(self.tenant, doc_id) is None:
            return False
        self.store.delete_document(self.tenant, doc_id)
        self.registry.delete(self.tenant, doc_id)
        if self.originals is not None:
            self.originals.delete(self.tenant, doc_id)
        self.registry.bump_index_version(self.tenant)
        return True


def embed_in_batches(embedder: Embedder, texts: Sequence[str], batch_size: int) -> Vectors:
    """Embed many texts, batching texts of similar length together to waste little padding."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = embedder.embed_batch([texts[i] for i in idx])
    return out
