"""The cited passage on its page: PDF originals kept at ingestion, pages rendered by pdfium, the passage's
rectangles from the text layer (or from OCR's word boxes on a scanned page), and the page highlighting it."""

from __future__ import annotations

import io
import shutil

import httpx
import pypdfium2 as pdfium
import pytest
from PIL import Image

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.auth import create_key
from ragline.interfaces.http import create_app

from conftest import FIXTURES, needs_tesseract, serve

QUESTION = "When did Adobe make the PDF specification available free of charge?"
SENTENCE = "Adobe Systems made the PDF specification available free of charge in 1993"


@pytest.fixture
def pdf_service(make_app, tmp_path):
    app = make_app(chat_model="extractive", auth="api_key")
    folder = tmp_path / "kb"
    folder.mkdir()
    for name in ("sample_pdf_1.pdf", "non_text_searchable.pdf"):
        shutil.copy(FIXTURES / "pdf" / name, folder / name)
    (folder / "notes.md").write_text("# Notes\n\nNothing on any page.\n", encoding="utf-8")
    team = app.for_tenant("team")
    team.ingestor.run(source_items(expand_paths([str(folder)])))
    _, key = create_key(app.registry, "team")
    _, other = create_key(app.registry, "acme")  # acme sees nothing of team's
    url, stop = serve(create_app(app))
    yield url, team, {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {other}"}, key
    stop()


def doc(app, name):
    return next(r.doc_id for r in app.registry.list("team", "") if r.doc_id.endswith(name))


def expected_rects(sentence, scale=1.5):
    """Where pdfium itself puts the sentence on page 1 (image pixels), found independently of ragline."""
    pdf = pdfium.PdfDocument(str(FIXTURES / "pdf" / "sample_pdf_1.pdf"))
    page = pdf[0]
    height = page.get_size()[1]
    textpage = page.get_textpage()
    searcher = textpage.search(sentence.split(" free")[0], match_case=False)
    index, count = searcher.get_next()
    rects = [textpage.get_rect(n) for n in range(textpage.count_rects(index, count))]
    return [(left * scale, (height - top) * scale, (right - left) * scale, (top - bottom) * scale)
            for left, bottom, right, top in rects]


def covered(expected, shown):
    """The share of the expected rectangle's area that the shown rectangles cover."""
    x, y, w, h = expected
    area = 0.0
    for sx, sy, sw, sh in shown:
        dx = min(x + w, sx + sw) - max(x, sx)
        dy = min(y + h, sy + sh) - max(y, sy)
        area += max(dx, 0) * max(dy, 0)
    return area / (w * h)


def test_a_page_is_rendered_and_the_passage_located_on_it(pdf_service):
    url, app, team, _, _ = pdf_service
    pdf = doc(app, "sample_pdf_1.pdf")
    png = httpx.get(f"{url}/v1/pages", params={"doc_id": pdf, "page": 1}, headers=team, timeout=30)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    boxes = httpx.get(f"{url}/v1/pages/boxes", params={"doc_id": pdf, "page": 1, "text": SENTENCE + "."},
                      headers=team, timeout=30).json()
    assert (boxes["width"], boxes["height"]) == image.size and boxes["found"]
    shown = [(r["x"], r["y"], r["w"], r["h"]) for r in boxes["rects"]]
    assert all(covered(e, shown) > 0.9 for e in expected_rects(SENTENCE))
    assert len(shown) == 2  # the sentence's two lines, nothing else of the page
    nowhere = httpx.get(f"{url}/v1/pages/boxes", params={"doc_id": pdf, "page": 2, "text": SENTENCE},
                        headers=team, timeout=30).json()
    assert nowhere["found"] is False and nowhere["rects"] == []


def test_what_cannot_be_shown_says_why(pdf_service):
    url, app, team, acme, _ = pdf_service
    pdf = doc(app, "sample_pdf_1.pdf")
    cases = {
        "a page past the end": ({"doc_id": pdf, "page": 9}, team, 404, "has 4 pages, not 9"),
        "not a PDF": ({"doc_id": doc(app, "notes.md"), "page": 1}, team, 415, "pages are shown for PDF"),
        "another tenant's document": ({"doc_id": pdf, "page": 1}, acme, 404, "no such document"),
        "page 0": ({"doc_id": pdf, "page": 0}, team, 422, "page"),
        "no credential": ({"doc_id": pdf, "page": 1}, {}, 401, "missing credentials"),
    }
    for what, (params, headers, status, message) in cases.items():
        reply = httpx.get(f"{url}/v1/pages", params=params, headers=headers, timeout=30)
        assert reply.status_code == status and message in reply.json()["error"]["message"], what
    assert app.ingestor.remove(pdf)
    gone = httpx.get(f"{url}/v1/pages", params={"doc_id": pdf, "page": 1}, headers=team, timeout=30)
    assert gone.status_code == 404 and app.originals.get("team", pdf) is None


@needs_tesseract()
def test_a_scanned_page_is_highlighted_from_the_words_ocr_read(pdf_service):
    url, app, team, _, _ = pdf_service
    scanned = doc(app, "non_text_searchable.pdf")
    text = "This is an example of a non-text-searchable PDF."
    boxes = httpx.get(f"{url}/v1/pages/boxes", params={"doc_id": scanned, "page": 1, "text": text},
                      headers=team, timeout=60).json()
    assert boxes["found"] and len(boxes["rects"]) == len(text.split())  # a box per word
    xs = [r["x"] for r in boxes["rects"]]
    assert xs == sorted(xs)  # left to right along the line
    assert all(0 <= r["y"] < boxes["height"] / 4 for r in boxes["rects"])  # the first line, near the top


def test_the_page_opens_a_pdf_citation_highlighted_on_its_page(pdf_service, browser):
    from test_web_page import ARTIFACTS

    url, _, _, _, key = pdf_service
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(url)
    page.locator("#key").fill(key)
    page.locator("#key").press("Tab")  # the page keeps the key and reconnects with it
    page.get_by_placeholder("Ask a question").fill(QUESTION)
    page.keyboard.press("Enter")
    answer = page.locator(".answer").first
    answer.locator("button.cite").first.wait_for(timeout=30_000)
    answer.locator("button.cite").first.click()
    figure = page.locator("#excerpt .page-view")
    figure.locator(".hl").first.wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#excerpt .page-view img').naturalWidth > 0")
    geometry = page.evaluate("""() => {
      const img = document.querySelector('#excerpt .page-view img');
      const box = img.getBoundingClientRect(), k = img.naturalWidth / box.width;
      return [...document.querySelectorAll('#excerpt .page-view .hl')].map((el) => {
        const r = el.getBoundingClientRect();
        return [(r.left - box.left) * k, (r.top - box.top) * k, r.width * k, r.height * k];
      });
    }""")
    assert all(covered(e, geometry) > 0.85 for e in expected_rects(SENTENCE))  # the cited sentence is lit
    # the cited sentence (the answerer's, which runs on from the page's title lines), not the whole passage
    assert len(geometry) <= 4
    figure.locator(".hl").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "citation-on-its-page.png"))
