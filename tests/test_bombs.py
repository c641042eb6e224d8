"""Decompression bombs and other files that cost more than they weigh: refused with their reason, memory bounded.

The bombs are built here, not committed: a 1.5 MB zip whose one part expands to 1.5 GB (as a .docx, .pptx and
.xlsx), a 1.5 MB .jsonl.gz that expands to 1.5 GB (gzip members concatenated), and a zip of many small parts.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from ragline.errors import ParseError
from ragline.ingest.bounds import Limits, bounded_lines, check_archive
from ragline.ingest.parsing import parse
from ragline.testing.process import ragline_server

from conftest import FIXTURES

GIB_AND_A_HALF = 1536


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """A zip (shaped like a .docx) whose document part is 1.5 GiB of one repeated letter: about 1.5 MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            block = b"a" * (1 << 20)
            for _ in range(GIB_AND_A_HALF):
                part.write(block)
    return out.getvalue()


def gzip_bomb(line_breaks: bool) -> bytes:
    """A .jsonl.gz expanding to 1.5 GiB: one compressed MiB repeated as concatenated gzip members (valid gzip)."""
    block = (b'{"_id": "x", "text": "aaaa"}\n' * 36157) if line_breaks else b"a" * (1 << 20)
    member = gzip.compress(block, compresslevel=9)
    first = gzip.compress(b'{"_id": "first", "text": "A real record before the bomb."}\n')
    return first + member * GIB_AND_A_HALF


def test_a_zip_bomb_is_refused_before_anything_is_inflated(zip_bomb: bytes) -> None:
    assert len(zip_bomb) < 2_000_000
    for suffix in (".docx", ".pptx", ".xlsx"):
        with pytest.raises(ParseError, match=r"expands to 1,536 MiB, more than the 128 MiB limit"):
            parse(zip_bomb, "report" + suffix)


def test_a_bomb_of_many_small_parts_is_refused_by_its_ratio() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for n in range(100):  # each part under the 1 MiB below which a part's own ratio is not judged
            archive.writestr(f"ppt/slides/slide{n}.xml", b"a" * 1_000_000)
    with pytest.raises(ParseError, match=r"\(all parts together\) expands [\d,]+ times.*100:1 limit"):
        check_archive(out.getvalue(), "deck.pptx", Limits())


def test_real_office_files_pass_the_checks() -> None:
    for path in [*FIXTURES.glob("docx/*.docx"), *FIXTURES.glob("pptx/*.pptx"), *FIXTURES.glob("xlsx/*.xlsx")]:
        data = path.read_bytes()
        check_archive(data, path.name, Limits())
        assert parse(data, path.name).sections


def test_a_gzip_bomb_is_refused_while_it_streams(tmp_path: Path) -> None:
    for line_breaks in (True, False):
        path = tmp_path / f"corpus-{line_breaks}.jsonl.gz"
        path.write_bytes(gzip_bomb(line_breaks))
        assert path.stat().st_size < 5_000_000  # 1.5 GiB once expanded
        lines = bounded_lines(path, Limits())
        assert next(lines) == (1, '{"_id": "first", "text": "A real record before the bomb."}')
        with pytest.raises(ParseError, match=r"expands more than 100 times \(64 KiB from [0-9]+ bytes so far"):
            next(lines)


def test_a_record_longer_than_a_file_may_be_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "short"}\n' + b"b" * 300_000)
    lines = bounded_lines(path, Limits(file_bytes=100_000))
    assert next(lines)[0] == 1
    with pytest.raises(ParseError, match=r"long.jsonl:2: one record is longer than the 98 KiB limit"):
        next(lines)


def test_a_document_yielding_too_much_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"yields 2,000,001 characters of text, more than the 2,000,000 limit"):
        parse(b"a" * 2_000_001, "big.txt", Limits(document_chars=2_000_000))


def _peak_rss_mib(pid: int) -> float:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmHWM"].split()[0]) / 1024


def _upload(url: str, files: list[tuple[str, tuple[str, bytes]]]) -> dict[str, object]:
    """Upload files and wait for their ingestion job to end; its final status."""
    reply = httpx.post(f"{url}/v1/documents", files=files, timeout=60)
    assert reply.status_code == 202, reply.text
    status_url = url + reply.json()["status_url"]
    deadline = time.monotonic() + 240
    while (job := httpx.get(status_url, timeout=10).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    return dict(job)


def test_the_server_refuses_every_bomb_and_stays_within_300_mb_of_its_baseline(
        zip_bomb: bytes, tmp_path: Path) -> None:
    """``ragline serve`` as a user runs it: the bombs go through the upload route and the ingestion queue."""
    env = {"RAGLINE_HOME": str(tmp_path / "home"), "RAGLINE_CHAT_MODEL": "extractive"}
    with (tmp_path / "server.log").open("wb") as log, ragline_server(env, log=log) as (url, server):
        # the baseline is a working server: one real document ingested (the embedding model is loaded)
        _upload(url, [("files", ("guide.md", b"# Guide\n\nThe service answers from your documents.\n"))])
        baseline = _peak_rss_mib(server.pid)
        files = [("files", (f"bomb{s}", zip_bomb)) for s in (".docx", ".pptx", ".xlsx")]
        files += [("files", ("corpus.jsonl.gz", gzip_bomb(True))), ("files", ("oneline.jsonl.gz", gzip_bomb(False)))]
        job = _upload(url, files)
        grown = _peak_rss_mib(server.pid) - baseline
    reasons = {f["doc_id"]: f["reason"] for f in job["progress"]["failed"]}  # type: ignore[index]
    print(json.dumps({"baseline_mib": round(baseline), "grown_mib": round(grown), "reasons": reasons}, indent=1))
    assert job["status"] == "done"
    for name in ("bomb.docx", "bomb.pptx", "bomb.xlsx"):
        assert "decompression bomb" in reasons[name]
    for name in ("corpus.jsonl.gz", "oneline.jsonl.gz"):
        assert "expands more than 100 times" in reasons[name]
    assert "first" not in reasons  # the real record before each bomb was ingested
    assert grown < 300, f"the server grew by {grown:.0f} MiB while refusing the bombs"


def test_files_are_read_one_at_a_time_as_the_ingestor_reaches_them(tmp_path: Path, monkeypatch) -> None:
    """An ingestion job used to read every file of an upload into memory before the first was parsed."""
    from ragline.ingest.pipeline import source_items

    paths = []
    for n in range(3):
        paths.append(tmp_path / f"doc{n}.md")
        paths[-1].write_text(f"# Doc {n}\n\nText {n}.\n", encoding="utf-8")
    reads: list[str] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    items = list(source_items(paths))  # listed and hashed (as a stream), not read
    assert reads == [] and len({i.sha256 for i in items}) == 3
    items[1].load()
    assert reads == ["doc1.md"]
