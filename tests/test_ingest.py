from __future__ import annotations

import os
import shutil
import threading

import pytest

from ragline.errors import InputError, StoreError
from ragline.ingest.bounds import Limits
from ragline.ingest.pipeline import expand_paths, source_items

from conftest import FIXTURES, write


def ingest(app, *paths, **kw):
    return app.ingestor.run(source_items(expand_paths([str(p) for p in paths]), Limits.of(app.settings)), **kw)


def test_every_format_ingests_and_bad_files_are_reported(make_app, tmp_path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURES, docs, ignore=shutil.ignore_patterns("NOTICE"))
    write(docs, "empty.txt", "")
    write(docs, "tool.exe", "MZ")
    (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    app = make_app()
    report = ingest(app, docs)
    failed = dict(report.failed)
    reasons = {k.rsplit("/", 1)[1]: v for k, v in failed.items()}
    assert reasons["empty.txt"] == "empty.txt: empty file"
    assert "unsupported file type .exe" in reasons["tool.exe"]
    assert "not UTF-8 text" in reasons["latin1.txt"]
    if shutil.which("tesseract") or os.environ.get("CI"):
        assert "non_text_searchable.pdf" not in reasons  # the scanned page is read by OCR
    else:
        assert "to read it, install Tesseract" in reasons["non_text_searchable.pdf"]
    # txt, md, html, 3 pdf (one scanned), 2 docx, pptx, xlsx, csv: every good file
    assert report.added == 11 - ("non_text_searchable.pdf" in reasons)
    rows = {r.doc_id.rsplit("/", 1)[1]: r for r in app.registry.list("default")}
    assert rows["sample_pdf_1.pdf"].status == "ready" and rows["sample_pdf_1.pdf"].chunks > 0
    assert rows["empty.txt"].status == "failed" and rows["empty.txt"].chunks == 0
    assert app.store.count({"tenant": "default"}) == report.chunks
    pdf_hits = app.engine.retrieve("PDF", k=50, mode="bm25", filters={"source": str(docs / "pdf")})
    pdf_pages = {h.chunk.page for h in pdf_hits}
    assert None not in pdf_pages and len(pdf_pages) > 1


def test_reingest_skips_unchanged(make_store_app, tmp_path) -> None:
    path = write(tmp_path, "a.md", "# A\n\nAlpha bravo charlie.")
    app = make_store_app()
    first = ingest(app, path)
    second = ingest(app, path)
    assert (first.added, second.added, second.unchanged, second.chunks) == (1, 0, 1, 0)


def test_a_changed_parser_ingests_again_only_its_own_format(make_store_app, tmp_path, monkeypatch) -> None:
    """A parser that now yields something else (PDF titles, say) re-reads that format's files, and no other."""
    from ragline.ingest import pipeline

    md = write(tmp_path, "a.md", "# A\n\nAlpha bravo charlie.")
    pdf = tmp_path / "sample.pdf"
    shutil.copy(FIXTURES / "pdf" / "sample_pdf_1.pdf", pdf)
    app = make_store_app()
    assert ingest(app, md, pdf).added == 2
    monkeypatch.setitem(pipeline.FORMAT_VERSIONS, ".pdf", "next")
    again = ingest(app, md, pdf)
    assert (again.updated, again.unchanged) == (1, 1)
    assert [r.doc_id for r in app.registry.list("default") if r.doc_id.endswith(".pdf")] == [str(pdf)]


def test_update_replaces_and_rm_removes(make_store_app, tmp_path) -> None:
    path = write(tmp_path, "policy.md", "# Policy\n\nThe retention period is seven days.")
    app = make_store_app()
    ingest(app, path)
    doc_id = app.registry.list("default")[0].doc_id
    path.write_text("# Policy\n\nThe retention period is thirty days.\n\n## More\n\nExtra section.", encoding="utf-8")
    report = ingest(app, path)
    assert report.updated == 1
    texts = [h.chunk.text for h in app.engine.retrieve("retention period", k=10, mode="bm25")]
    assert any("thirty" in t for t in texts)
    assert not any("seven" in t for t in texts)
    assert app.store.count({"doc_id": doc_id}) == app.registry.get("default", doc_id).chunks
    assert app.ingestor.remove(doc_id)
    assert app.store.count({"doc_id": doc_id}) == 0
    assert app.registry.get("default", doc_id) is None
    assert not app.ingestor.remove(doc_id)


def test_a_broken_new_version_keeps_the_old_one(make_store_app, tmp_path) -> None:
    path = write(tmp_path, "notes.txt", "Quarterly revenue grew.")
    app = make_store_app()
    ingest(app, path)
    path.write_bytes(b"\xff\xfe\x00\xd8")  # undecodable now
    path.write_bytes(b"x" + b"\xc3\x28")
    report = ingest(app, path)
    assert len(report.failed) == 1
    record = app.registry.list("default")[0]
    assert record.status == "ready"
    assert app.store.count({"doc_id": record.doc_id}) == record.chunks == 1


def test_readers_never_see_both_versions_or_neither(make_app, tmp_path) -> None:
    """An update is one commit: a concurrent reader sees the old chunk set or the new, never a mix."""
    path = write(tmp_path, "v.md", "# V\n\n" + "\n\n".join(f"## S{i}\n\nversion zero part {i}" for i in range(6)))
    app = make_app()
    ingest(app, path)
    doc_id = app.registry.list("default")[0].doc_id
    versions = {app.store.count({"doc_id": doc_id})}
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(app.store.count({"doc_id": doc_id}))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 4):
            body = "\n\n".join(f"## S{i}\n\nversion {n} part {i} " + "word " * 150 for i in range(3 * n))
            path.write_text("# V\n\n" + body, encoding="utf-8")
            ingest(app, path)
            versions.add(app.registry.get("default", doc_id).chunks)
    finally:
        stop.set()
        thread.join()
    assert len(versions) == 4, "each version has its own chunk count"
    assert seen, "the reader ran"
    assert seen <= versions  # every count a reader saw is one whole version: no mix, no empty moment


def test_oversized_file_is_refused_with_the_limit(make_app, tmp_path) -> None:
    path = write(tmp_path, "big.txt", "word " * 5000)
    app = make_app(max_file_bytes=1000)
    report = ingest(app, path)
    assert report.failed[0][1] == "big.txt: 24.4 KiB is over the 1000 B limit (RAGLINE_MAX_FILE_BYTES)"


def test_missing_path_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"no such file or folder: nowhere\.md"):
        expand_paths(["nowhere.md"])


def test_jsonl_corpus_and_embedder_change_refused(make_app, tmp_path) -> None:
    import gzip
    import json

    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt") as fh:
        fh.write(json.dumps({"_id": "guide/a.md", "title": "A", "text": "# A\n\nAlpha page."}) + "\n")
        fh.write(json.dumps({"_id": "doc-2", "title": "B", "text": "Bravo abstract."}) + "\n")
    app = make_app()
    assert ingest(app, corpus).added == 2
    assert {r.doc_id for r in app.registry.list("default")} == {"guide/a.md", "doc-2"}
    other = make_app(embedder="fake")
    with pytest.raises(StoreError, match="built with the embedder 'all-MiniLM-L6-v2-int8'"):
        _ = other.store
