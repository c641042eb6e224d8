"""Amazon Textract's DetectDocumentText on loopback, for tests: the documented request, limits and reply.

The reading is done by Tesseract, so what comes back is what the page really says.
Refused as Textract refuses them: a document given as an S3 object (not served here), over 10 MB
(``DocumentTooLargeException``), not PNG, JPEG, TIFF or PDF (``UnsupportedDocumentException``), a side under 50 or
over 10,000 pixels (``InvalidParameterException``). The reply is Textract's shape: a PAGE block, LINE and WORD
blocks with ``Text``, ``Confidence``, a ``Geometry`` relative to the page (``BoundingBox`` and ``Polygon``) and
``CHILD`` relationships, and ``DocumentMetadata.Pages``. Not proven: Textract's own reading accuracy.
"""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

MAX_BYTES = 10 * 1024 * 1024
MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"%PDF")


def detect_document_text(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for one request; errors as ``{"__type", "message"}``."""
    from PIL import Image

    from ragline.ingest.ocr import TesseractOCR

    document = body.get("Document") or {}
    if "Bytes" not in document:
        return 400, _error("InvalidParameterException", "Document.Bytes is required here (S3Object is not served)")
    data = base64.b64decode(document["Bytes"])
    if len(data) > MAX_BYTES:
        return 400, _error("DocumentTooLargeException", "the document is over 10 MB")
    if not data.startswith(MAGIC):
        return 400, _error("UnsupportedDocumentException", "the document is not PNG, JPEG, TIFF or PDF")
    image = Image.open(io.BytesIO(data))
    if min(image.size) < 50 or max(image.size) > 10_000:
        return 400, _error("InvalidParameterException", f"a side of {image.size} is outside 50 to 10,000 pixels")
    read = TesseractOCR().read(image)
    width, height = image.size
    lines: dict[int, list[dict[str, Any]]] = {}
    for word in read.words:  # Tesseract's words, grouped into lines by their vertical centre
        row = round((word.top + word.height / 2) / max(word.height, 1))
        lines.setdefault(row, []).append(_block("WORD", word.text, word.confidence, word.left / width,
                                                word.top / height, word.width / width, word.height / height))
    blocks: list[dict[str, Any]] = []
    for words in (lines[k] for k in sorted(lines)):
        left = min(w["Geometry"]["BoundingBox"]["Left"] for w in words)
        top = min(w["Geometry"]["BoundingBox"]["Top"] for w in words)
        right = max(w["Geometry"]["BoundingBox"]["Left"] + w["Geometry"]["BoundingBox"]["Width"] for w in words)
        bottom = max(w["Geometry"]["BoundingBox"]["Top"] + w["Geometry"]["BoundingBox"]["Height"] for w in words)
        line = _block("LINE", " ".join(w["Text"] for w in words), min(w["Confidence"] for w in words),
                      left, top, right - left, bottom - top)
        line["Relationships"] = [{"Type": "CHILD", "Ids": [w["Id"] for w in words]}]
        blocks += [line, *words]
    page = _block("PAGE", "", 100.0, 0.0, 0.0, 1.0, 1.0)
    page.pop("Text")
    page["Relationships"] = [{"Type": "CHILD", "Ids": [b["Id"] for b in blocks if b["BlockType"] == "LINE"]}]
    return 200, {"DocumentMetadata": {"Pages": 1}, "Blocks": [page, *blocks],
                 "DetectDocumentTextModelVersion": "1.0"}


def _block(kind: str, text: str, confidence: float, left: float, top: float, width: float,
           height: float) -> dict[str, Any]:
    polygon = [{"X": left, "Y": top}, {"X": left + width, "Y": top}, {"X": left + width, "Y": top + height},
               {"X": left, "Y": top + height}]
    return {"BlockType": kind, "Id": str(uuid.uuid4()), "Text": text, "Confidence": max(0.0, confidence),
            "Geometry": {"BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                         "Polygon": polygon}}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}
