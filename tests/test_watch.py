"""``ragline ingest --watch`` keeps the index in step with a folder (issue 19, item 5): run as a user runs it, while
files are written, edited, saved in a burst and deleted."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from ragline.compose import Ragline
from ragline.settings import Settings


def _lines(stream: object, out: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line.rstrip("\n"))


def _wait_for(out: queue.Queue[str], text: str, seen: list[str], seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} never came; saw {seen}")


def test_new_changed_and_deleted_files_follow_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    (folder / "team").mkdir(parents=True)
    (folder / "start.md").write_text("# Start\n\nThe office opens at nine.\n", encoding="utf-8")
    env = {**os.environ, "RAGLINE_HOME": str(tmp_path / "home"), "RAGLINE_CHAT_MODEL": "extractive"}
    process = subprocess.Popen([sys.executable, "-m", "ragline", "ingest", "--watch", "notes"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, out), daemon=True).start()
    seen: list[str] = []
    try:
        _wait_for(out, "1 added", seen)  # the first pass
        _wait_for(out, "watching notes", seen)
        time.sleep(0.5)
        (folder / "team" / "alpha.md").write_text("# Alpha\n\nAlpha ships on Tuesday.\n", encoding="utf-8")
        assert "1 documents: 1 added" in _wait_for(out, "documents:", seen)
        (folder / "team" / "alpha.md").write_text("# Alpha\n\nAlpha ships on Friday.\n", encoding="utf-8")
        assert "1 documents: 0 added, 1 updated" in _wait_for(out, "documents:", seen)
        for n in range(10):  # a burst of saves, as an editor or a copy makes: one ingestion
            (folder / "burst.md").write_text(f"# Burst\n\nSaved {n} times.\n" + "more text. " * n, encoding="utf-8")
            time.sleep(0.03)
        assert "1 documents: 1 added" in _wait_for(out, "documents:", seen)
        (folder / "notes.swp").write_bytes(b"editor swap file")  # ignored
        (folder / "team" / "alpha.md").unlink()
        assert _wait_for(out, "removed", seen) == "removed notes/team/alpha.md"
        (folder / "start.md").unlink()
        (folder / "team").rmdir()
        _wait_for(out, "removed notes/start.md", seen)
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]
    app = Ragline(Settings(home=tmp_path / "home"))
    assert [r.doc_id for r in app.registry.list("default")] == ["notes/burst.md"]
    assert sum("documents:" in line for line in seen) == 4, "\n".join(seen)  # the first pass, three changes
    assert not any("swp" in line for line in seen)
