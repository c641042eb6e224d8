"""The original files of PDF documents, kept so that a citation can be shown where it stands on its page.

Locally they are written under ``HOME/originals/`` when a PDF is ingested, and removed with the document. On AWS
the upload itself (``s3://BUCKET/uploads/TENANT/DOC_ID``) is the original: nothing is copied, the pages API reads
it from the bucket.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

KEPT = (".pdf",)  # what the pages API can render


class Originals(Protocol):
    """Where originals are kept: the ingest path writes them, the pages API reads them."""

    def put(self, tenant: str, doc_id: str, data: bytes) -> None:
        """Keep the document's original."""
        ...

    def get(self, tenant: str, doc_id: str) -> bytes | None:
        """The original, or None when it is not kept."""
        ...

    def delete(self, tenant: str, doc_id: str) -> None:
        """Forget it."""
        ...


def kept(name: str) -> bool:
    """Whether a document of this name has its original kept."""
    return name.lower().endswith(KEPT)


class LocalOriginals:
    """Originals in a folder, one per (tenant, document)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, tenant: str, doc_id: str) -> Path:
        folder = self.root / hashlib.sha256(tenant.encode()).hexdigest()[:16]
        return folder / hashlib.sha256(doc_id.encode()).hexdigest()  # no path from the id reaches the disk

    def put(self, tenant: str, doc_id: str, data: bytes) -> None:
        """Keep ``data`` as the document's original (replacing an older version)."""
        path = self._path(tenant, doc_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)

    def get(self, tenant: str, doc_id: str) -> bytes | None:
        """The original's bytes, or None when it is not kept."""
        path = self._path(tenant, doc_id)
        return path.read_bytes() if path.exists() else None

    def delete(self, tenant: str, doc_id: str) -> None:
        """Forget the original."""
        self._path(tenant, doc_id).unlink(missing_ok=True)


class BucketOriginals:
    """The uploads in the bucket are the originals (AWS): read only."""

    def __init__(self, bucket: str, s3: Any) -> None:
        self.bucket, self.s3 = bucket, s3

    def put(self, tenant: str, doc_id: str, data: bytes) -> None:
        """Nothing to do: the upload is the original."""

    def get(self, tenant: str, doc_id: str) -> bytes | None:
        """The upload's bytes, or None when it is gone."""
        from ragline.providers.aws.clients import error_code

        try:
            data: bytes = self.s3.get_object(Bucket=self.bucket, Key=f"uploads/{tenant}/{doc_id}")["Body"].read()
        except Exception as err:
            if error_code(err) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return data

    def delete(self, tenant: str, doc_id: str) -> None:
        """Nothing to do: deleting the document deletes the upload."""
