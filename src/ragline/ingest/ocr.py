"""Reading text from pictures: scanned PDF pages and image files, offline with Tesseract (or on AWS with Textract).

Tesseract 5 (the program: ``apt install tesseract-ocr``, ``brew install tesseract``) through pytesseract (its
well-kept Python wrapper, Apache-2.0, pure Python). Chosen over rapidocr-onnxruntime after measuring both with
``bench/ocr.py`` on the same pages (README: "Scanned documents and images"): both read the scanned fixture without
an error, but on prose pages of the SEC filings Tesseract's median character error rate was 0.2 % against
rapidocr's 34 % (it runs words together and reorders lines), and it was faster (2.4 s against 7.6 s for the
fixture page). rapidocr also adds about 205 MB (opencv-python is 190 MB of it) against 24 MB for Debian's
tesseract-ocr with English, and is not published for Python 3.13. Nothing is downloaded at run time: the English
model comes with the package (``tesseract-ocr-eng``; others by ``RAGLINE_OCR_LANGUAGES=eng+deu`` once their
package is installed).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ragline.errors import ConfigError, ParseError

INSTALL = "install Tesseract (apt install tesseract-ocr, or brew install tesseract)"


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word and its box, in pixels of the image read."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float


@dataclass(slots=True)
class ReadPage:
    """What OCR read from one picture: text (lines, paragraphs apart by a blank line) and each word's box."""

    text: str
    words: list[Word] = field(default_factory=list)
    width: int = 0
    height: int = 0


class TesseractOCR:
    """OCR with the ``tesseract`` program."""

    name = "tesseract"

    def __init__(self, languages: str = "eng") -> None:
        if shutil.which("tesseract") is None:
            raise ConfigError(f"OCR needs the tesseract program: {INSTALL}")
        self.languages = languages

    def read(self, image: Any) -> ReadPage:
        """Read a PIL image."""
        import pytesseract

        try:
            data = pytesseract.image_to_data(image, lang=self.languages, output_type=pytesseract.Output.DICT)
        except pytesseract.TesseractError as err:
            raise ParseError(f"OCR failed: {err.message.strip() or err}") from err
        words: list[Word] = []
        lines: dict[tuple[int, int, int], list[str]] = {}
        paragraphs: dict[tuple[int, int], list[str]] = {}
        for i, text in enumerate(data["text"]):
            if not text.strip():
                continue
            words.append(Word(text, data["left"][i], data["top"][i], data["width"][i], data["height"][i],
                              float(data["conf"][i])))
            paragraph = (data["block_num"][i], data["par_num"][i])
            lines.setdefault((*paragraph, data["line_num"][i]), []).append(text)
            paragraphs.setdefault(paragraph, [])
        for (block, par, _), line in lines.items():
            paragraphs[(block, par)].append(" ".join(line))
        text = "\n\n".join("\n".join(p) for p in paragraphs.values())
        return ReadPage(text, words, *image.size)


class TextractOCR:
    """OCR with Amazon Textract's DetectDocumentText (the ingestion function on AWS: no Tesseract in Lambda).

    One synchronous call per page image (PNG, at most 10 MB and 10,000 pixels a side, as the API documents; larger
    renders are scaled down); throttling is retried by the one retry policy; the words' boxes come back relative to
    the page and are returned in the image's pixels. Priced per page (about $1.50 per 1,000).
    """

    name = "textract"
    MAX_BYTES = 10 * 1024 * 1024
    MAX_SIDE = 10_000

    def __init__(self, region: str | None = None, endpoint_url: str | None = None) -> None:
        self.region, self.endpoint_url = region, endpoint_url

    def read(self, image: Any) -> ReadPage:
        """Read a PIL image."""
        import io

        from ragline.errors import ModelUnavailableError
        from ragline.providers.aws.clients import call_mapped, client
        from ragline.resilience import RetryPolicy

        if max(image.size) > self.MAX_SIDE:
            image = image.copy()
            image.thumbnail((self.MAX_SIDE, self.MAX_SIDE))
        out = io.BytesIO()
        image.convert("L").save(out, format="PNG", optimize=True)
        if out.tell() > self.MAX_BYTES:
            raise ParseError(f"a page image of {out.tell()} bytes is over Textract's 10 MB")
        api = client("textract", self.region, self.endpoint_url)
        reply = RetryPolicy().run(
            lambda: call_mapped(lambda: api.detect_document_text(Document={"Bytes": out.getvalue()}),
                                "Textract DetectDocumentText", transient={
                                    "ThrottlingException", "ProvisionedThroughputExceededException",
                                    "InternalServerError"}, permanent=ParseError),
            transient=lambda err: isinstance(err, ModelUnavailableError))
        width, height = image.size
        lines = [b["Text"] for b in reply.get("Blocks", []) if b["BlockType"] == "LINE"]
        words = []
        for block in reply.get("Blocks", []):
            if block["BlockType"] == "WORD":
                box = block["Geometry"]["BoundingBox"]
                words.append(Word(block["Text"], round(box["Left"] * width), round(box["Top"] * height),
                                  round(box["Width"] * width), round(box["Height"] * height),
                                  float(block.get("Confidence", 0.0))))
        return ReadPage("\n".join(lines), words, width, height)


@cache
def ocr_engine(mode: str, languages: str, region: str | None = None,
               endpoint_url: str | None = None) -> TesseractOCR | TextractOCR | None:
    """The OCR engine the settings ask for: ``auto`` (Tesseract when installed), ``tesseract``, ``textract``, off."""
    if mode == "off":
        return None
    if mode == "textract":
        return TextractOCR(region, endpoint_url)
    try:
        return TesseractOCR(languages)
    except ConfigError:
        if mode == "tesseract":
            raise
        return None
