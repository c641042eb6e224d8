"""Reading text from pictures: scanned PDF pages and image files, offline, with Tesseract.

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


@cache
def ocr_engine(mode: str, languages: str) -> TesseractOCR | None:
    """The OCR engine the settings ask for: ``auto`` (Tesseract when installed), ``tesseract`` or ``off``."""
    if mode == "off":
        return None
    try:
        return TesseractOCR(languages)
    except ConfigError:
        if mode == "tesseract":
            raise
        return None
