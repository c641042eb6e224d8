"""``ragline ingest --watch``: keep the index in step with folders as files are written, edited and deleted.

watchfiles (Rust's notify: inotify on Linux, FSEvents on macOS, polling where neither works) reports changes in
batches; a batch ends after ``quiet_ms`` without a change (or ``debounce_ms`` at most), so a burst of saves (an
editor writing a file several times, a folder copied in) is ingested once. New and changed files are ingested
(an unchanged file is skipped by its hash, so a touch costs a hash), deleted files are removed, and a deleted
folder takes its documents with it. Editors' swap and backup files, hidden files and unsupported types are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.ingest.bounds import Limits
from ragline.ingest.parsing import SUPPORTED
from ragline.ingest.pipeline import doc_id_for, source_items

if TYPE_CHECKING:
    from ragline.compose import Ragline


class _Wanted:
    """Which changes to follow: watchfiles' default filter, then no hidden files and no unreadable types.

    The default filter drops editors' swap and backup files and VCS folders. A path without a suffix passes, as it
    may be a folder (deleted, or created).
    """

    def __init__(self) -> None:
        from watchfiles import DefaultFilter

        self.default = DefaultFilter()

    def __call__(self, change: Any, path: str) -> bool:
        name = Path(path).name
        if name.startswith(".") or not self.default(change, path):
            return False
        return name.lower().endswith(SUPPORTED) or not Path(path).suffix


def watch(app: Ragline, roots: Sequence[Path], *, tags: tuple[str, ...] = (), echo: Callable[[str], None] = print,
          quiet_ms: int = 400, debounce_ms: int = 5000, stop: Any = None) -> None:
    """Apply changes under ``roots`` to the index until ``stop`` is set (or the process is interrupted)."""
    from watchfiles import Change
    from watchfiles import watch as changes_of

    limits = Limits.of(app.settings)
    for batch in changes_of(*roots, watch_filter=_Wanted(), debounce=debounce_ms, step=quiet_ms, stop_event=stop,
                            raise_interrupt=False):
        gone = {Path(p) for kind, p in batch if kind == Change.deleted and not Path(p).exists()}
        present = sorted({Path(p) for kind, p in batch if kind != Change.deleted and Path(p).is_file()})
        for path in sorted(gone):
            for doc_id in _documents_at(app, path):
                if app.ingestor.remove(doc_id):
                    echo(f"removed {doc_id}")
        if present:
            report = app.ingestor.run(source_items(present, limits), tags=tags)
            for doc_id, reason in report.failed:
                echo(f"failed: {doc_id}: {reason}")
            echo(report.summary())


def _documents_at(app: Ragline, path: Path) -> list[str]:
    """The documents a deleted path held: the file's own, or every one under a deleted folder."""
    doc_id = doc_id_for(path)
    if app.registry.get(app.settings.tenant, doc_id) is not None:
        return [doc_id]
    return [r.doc_id for r in app.registry.list(app.settings.tenant, doc_id.rstrip("/") + "/")]
