"""OCR accuracy and speed on real pages: character error rate (CER) and seconds per page.

    uv run python bench/ocr.py [--engine tesseract|rapidocr] [--dpi 300] [--filings 5] [--per-filing 2]

Pages: the scanned fixture (``../shared/data/fixtures/pdf/non_text_searchable.pdf``, against a transcription
below), and pages of the SEC 10-Q filings rasterised with pdfium and read back, against their own text layer.
For each filing the pages with the most prose (the highest share of letters) are taken, so that reading order
in tables does not dominate the figure. CER is the edit distance between the OCR text and the truth, both with
whitespace collapsed, divided by the truth's length. ``--engine rapidocr`` needs ``rapidocr-onnxruntime``
installed in the interpreter that runs this (it is not one of ragline's dependencies; see the README).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SCANNED_TRUTH = (
    "IDRH Non-text-searchable PDF This is an example of a non-text-searchable PDF. Because it was created from an "
    "image rather than a text document, it cannot be rendered as plain text by the PDF reader. Thus, attempting to "
    "select the text on the page as though it were a text document or website will not work, regardless of how "
    "neatly it is organized."
)


def normal(text: str) -> str:
    """Whitespace collapsed; the characters themselves untouched."""
    return " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time with numpy (a page is a few thousand characters)."""
    if not a or not b:
        return max(len(a), len(b))
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    index = np.arange(len(b) + 1)
    row = index.copy()
    for i, code in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), start=1):
        substitute = row[:-1] + (codes_b != code)
        new = np.empty_like(row)
        new[0] = i
        new[1:] = np.minimum(row[1:] + 1, substitute)
        row = np.minimum.accumulate(new - index) + index  # insertions along the row
    return int(row[-1])


def pages(filings: int, per_filing: int) -> list[tuple[str, Any, str]]:
    """(name, pdfium page, truth) for the scanned fixture and the prose-richest pages of some filings."""
    scanned = pdfium.PdfDocument(str(DATA / "fixtures" / "pdf" / "non_text_searchable.pdf"))
    chosen = [("fixture: non_text_searchable.pdf p1", scanned[0], SCANNED_TRUTH)]
    for path in sorted((DATA / "sec-10q" / "docs").glob("*.pdf"))[:filings]:
        pdf = pdfium.PdfDocument(str(path))
        scored = []
        for n in range(len(pdf)):
            textpage = pdf[n].get_textpage()
            text = normal(textpage.get_text_range())
            textpage.close()
            if len(text) > 1500:
                scored.append((sum(c.isalpha() for c in text) / len(text), n, text))
        for _, n, text in sorted(scored, reverse=True)[:per_filing]:
            chosen.append((f"{path.name} p{n + 1}", pdf[n], text))
    return chosen


def reader(engine: str) -> Any:
    """A function from a PIL image to text."""
    if engine == "tesseract":
        from ragline.ingest.ocr import TesseractOCR

        tesseract = TesseractOCR()
        return lambda image: tesseract.read(image).text
    from rapidocr_onnxruntime import RapidOCR

    rapid = RapidOCR()

    def read(image: Any) -> str:
        result, _ = rapid(np.asarray(image))
        return "\n".join(line[1] for line in result or [])

    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["tesseract", "rapidocr"], default="tesseract")
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--filings", type=int, default=5)
    parser.add_argument("--per-filing", type=int, default=2)
    args = parser.parse_args()
    read = reader(args.engine)
    rows = []
    for name, page, truth in pages(args.filings, args.per_filing):
        image = page.render(scale=args.dpi / 72).to_pil()
        started = time.perf_counter()
        text = normal(read(image))
        seconds = time.perf_counter() - started
        cer = edit_distance(text, truth) / len(truth)
        rows.append({"page": name, "chars": len(truth), "cer": round(cer, 4), "seconds": round(seconds, 2)})
        print(f"{name:<40} {len(truth):>6} chars  CER {cer:6.2%}  {seconds:5.2f} s", flush=True)
    sec = [r for r in rows if not r["page"].startswith("fixture")]
    summary = {"engine": args.engine, "dpi": args.dpi, "pages": len(rows),
               "fixture_cer": rows[0]["cer"], "sec_cer_median": statistics.median(r["cer"] for r in sec),
               "sec_cer_mean": round(statistics.fmean(r["cer"] for r in sec), 4),
               "seconds_per_page_median": statistics.median(r["seconds"] for r in rows)}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
