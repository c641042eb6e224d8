"""A cited passage where it stands: the PDF page rendered by pdfium, and the rectangles of the passage on it.

``image`` renders a page of a document's kept original (``ingest/originals.py``) as PNG, cached by the document's
version. ``boxes`` finds a passage (a source's excerpt) on the page and returns its rectangles in the image's pixels:
from pdfium's character boxes where the page has a text layer (the passage and the page text are compared with
whitespace collapsed and case ignored, so line breaks do not matter; each sentence is found on its own, so a
passage that the chunker joined across columns still lights up where each part stands); from Tesseract's word boxes
where the page was scanned (read again, then cached).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ragline.errors import NotFoundError, UnsupportedTypeError
from ragline.ingest.originals import Originals, kept
from ragline.ingest.parsing import PDFIUM_LOCK
from ragline.seams import Documents

SCALE = 1.5  # 108 dots per inch: sharp enough to read, small enough to send
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+")
_WORD = re.compile(r"\w+")


class PageViews:
    """Page images and passage boxes for one tenant's PDFs."""

    def __init__(self, registry: Documents, originals: Originals | None, cache: Path, tenant: str,
                 ocr: Any = None) -> None:
        self.registry, self.originals, self.cache, self.tenant, self.ocr = registry, originals, cache, tenant, ocr

    def _version(self, doc_id: str) -> str:
        """The document's version (what the caches are keyed by), once it is known to be this tenant's PDF."""
        record = self.registry.get(self.tenant, doc_id)
        if record is None:
            raise NotFoundError(f"no such document: {doc_id}")
        if not kept(doc_id):
            raise UnsupportedTypeError(f"{doc_id}: pages are shown for PDF documents")
        return record.sha256

    def _data(self, doc_id: str) -> bytes:
        """The original's bytes (a read of S3 on AWS: only when no cache answers)."""
        data = self.originals.get(self.tenant, doc_id) if self.originals is not None else None
        if data is None:
            raise NotFoundError(f"{doc_id}: its original is not kept (it was ingested before ragline kept them, "
                                "or from a JSONL corpus); ingest the file again to show its pages")
        return data

    def _cached(self, version: str, page: int, kind: str) -> Path:
        return self.cache / f"{hashlib.sha256(f'{self.tenant}:{version}'.encode()).hexdigest()[:32]}-{page}.{kind}"

    def image(self, doc_id: str, page: int) -> bytes:
        """The page as PNG."""
        path = self._cached(self._version(doc_id), page, "png")
        if not path.exists():
            import io

            picture = _render(self._data(doc_id), page, doc_id)
            out = io.BytesIO()
            picture.save(out, format="PNG", optimize=True)
            self.cache.mkdir(parents=True, exist_ok=True)
            path.write_bytes(out.getvalue())
        return path.read_bytes()

    def boxes(self, doc_id: str, page: int, text: str) -> dict[str, Any]:
        """Where ``text`` stands on the page: ``{width, height, rects: [{x, y, w, h}], found}`` in image pixels."""
        version, data = self._version(doc_id), self._data(doc_id)
        pieces = [p for p in (_norm(s) for s in _SENTENCE.split(text)) if len(p) >= 12] or [_norm(text)]
        import pypdfium2 as pdfium

        with PDFIUM_LOCK:
            pdf = pdfium.PdfDocument(data)
            try:
                if not 1 <= page <= len(pdf):
                    raise NotFoundError(f"{doc_id} has {len(pdf)} pages, not {page}")
                sheet = pdf[page - 1]
                width, height = sheet.get_size()
                textpage = sheet.get_textpage()
                rects = _text_rects(textpage, height, pieces)
                has_text = textpage.count_chars() > 16
                textpage.close()
                sheet.close()
            finally:
                pdf.close()
        if not rects and not has_text and self.ocr is not None:
            rects = self._ocr_rects(version, data, doc_id, page, text)
        return {"page": page, "width": round(width * SCALE), "height": round(height * SCALE), "scale": SCALE,
                "rects": rects, "found": bool(rects)}

    def _ocr_rects(self, version: str, data: bytes, doc_id: str, page: int, text: str) -> list[dict[str, float]]:
        """Boxes of the passage's words on a scanned page, from the words OCR read there (cached per page)."""
        path = self._cached(version, page, "words.json")
        if path.exists():
            words = json.loads(path.read_text(encoding="utf-8"))
        else:
            picture = _render(data, page, doc_id)
            read = self.ocr.read(picture)
            factor = picture.width / max(read.width, 1)
            words = [[w.text, w.left * factor, w.top * factor, w.width * factor, w.height * factor] for w in read.words]
            self.cache.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(words), encoding="utf-8")
        wanted = [w.lower() for w in _WORD.findall(text)]
        found = [[_WORD.findall(w[0].lower()), w] for w in words]
        flat = [(token, box) for tokens, box in found for token in tokens]
        rects: list[dict[str, float]] = []
        start = next((i for i in range(len(flat)) if [t for t, _ in flat[i:i + 3]] == wanted[:3]), None)
        if start is None:
            return rects
        for (token, box), want in zip(flat[start:], wanted, strict=False):
            if token != want:
                break
            rect = {"x": box[1], "y": box[2], "w": box[3], "h": box[4]}
            if not rects or rects[-1] != rect:
                rects.append(rect)
        return [{k: round(v, 1) for k, v in r.items()} for r in rects]


def _render(data: bytes, page: int, doc_id: str) -> Any:
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
        try:
            if not 1 <= page <= len(pdf):
                raise NotFoundError(f"{doc_id} has {len(pdf)} pages, not {page}")
            return pdf[page - 1].render(scale=SCALE).to_pil()
        finally:
            pdf.close()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _text_rects(textpage: Any, height: float, pieces: list[str]) -> list[dict[str, float]]:
    """Rectangles (image pixels, top-left origin) of each piece found in the page's text."""
    raw = textpage.get_text_range()
    flat: list[str] = []
    where: list[int] = []  # the page text with whitespace collapsed, and each character's index in the page
    for i, ch in enumerate(raw):
        if ch.isspace():
            if flat and flat[-1] != " ":
                flat.append(" ")
                where.append(i)
            continue
        flat.append(ch.lower())
        where.append(i)
    page_text = "".join(flat)
    rects: list[dict[str, float]] = []
    for piece in pieces:
        at = page_text.find(piece)
        if at < 0:
            continue
        first, last = where[at], where[at + len(piece) - 1]
        for n in range(textpage.count_rects(first, last - first + 1)):
            left, bottom, right, top = textpage.get_rect(n)
            rects.append({"x": round(left * SCALE, 1), "y": round((height - top) * SCALE, 1),
                          "w": round((right - left) * SCALE, 1), "h": round((top - bottom) * SCALE, 1)})
    return rects
