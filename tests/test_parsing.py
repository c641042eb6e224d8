from __future__ import annotations

import io

import pytest

from ragline.errors import ParseError, UnsupportedTypeError
from ragline.ingest.bounds import Limits
from ragline.ingest.parsing import markdown_sections, parse

from conftest import FIXTURES, needs_tesseract


def one_page_pdf(content: bytes, title: str | None = None) -> bytes:
    """A one-page PDF drawing ``content`` (a content stream in Helvetica as /F1), with a Title property if given."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
    stream = DecodedStreamObject()
    stream.set_data(content)
    page[NameObject("/Contents")] = writer._add_object(stream)
    if title is not None:
        writer.add_metadata({"/Title": title})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def load(rel: str) -> tuple[bytes, str]:
    path = FIXTURES / rel
    return path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("txt/doc_1.txt", "Some text for testing"),
        ("markdown/sample.md", "What to build with Haystack"),
        ("html/what_is_haystack.html", "Haystack"),
        ("pdf/sample_pdf_1.pdf", "PDF"),
        ("docx/sample_docx.docx", "Sample Docx File"),
        ("pptx/sample_pptx_with_link.pptx", "Slide With Link\nVisit Example for more info."),
        ("xlsx/basic_tables_two_sheets.xlsx", "Basic Table\ncol_a: 1.5; col_b: test"),
        ("csv/sample_1.csv", "Name: John Doe; Age: 27"),
    ],
)
def test_every_format_gives_text(rel: str, expected: str) -> None:
    doc = parse(*load(rel))
    text = "\n".join(" > ".join(s.heading) + "\n" + s.text for s in doc.sections)
    assert text.strip()
    assert expected in text or expected in doc.title


def test_pdf_sections_carry_page_numbers() -> None:
    doc = parse(*load("pdf/sample_pdf_1.pdf"))
    pages = [s.page for s in doc.sections]
    assert pages[0] == 1
    assert pages == sorted(pages)
    assert len(pages) >= 2


def test_markdown_breadcrumbs_ignore_hashes_in_code() -> None:
    title, sections = markdown_sections(
        "# Guide<a name=\"g\"></a>\n\nIntro\\.\n\n## Setup\n\n```\n# not a heading\n```\n\n### Keys\n\nRotate them.\n"
    )
    assert title == "Guide"
    assert [s.heading for s in sections] == [("Guide",), ("Guide", "Setup"), ("Guide", "Setup", "Keys")]
    assert sections[0].text == "Intro."  # escapes resolved, anchors dropped
    assert "# not a heading" in sections[1].text


def test_html_headings_become_breadcrumbs() -> None:
    html = b"<html><head><title>T</title><style>x{}</style></head><body><h1>Top</h1><p>One <b>bold</b> line.</p>"
    html += b"<h2>Sub</h2><ul><li>first</li><li>second</li></ul><script>alert(1)</script></body></html>"
    doc = parse(html, "page.html")
    assert doc.title == "T"
    assert [s.heading for s in doc.sections] == [("Top",), ("Top", "Sub")]
    assert doc.sections[0].text == "One bold line."
    assert "alert" not in "".join(s.text for s in doc.sections)


def test_docx_headings_and_xlsx_rows(tmp_path) -> None:
    import docx
    import openpyxl

    d = docx.Document()
    d.add_heading("Policy", level=1)
    d.add_paragraph("Passwords rotate every 90 days.")
    d.add_heading("Exceptions", level=2)
    d.add_paragraph("Service accounts are exempt.")
    buf = io.BytesIO()
    d.save(buf)
    doc = parse(buf.getvalue(), "policy.docx")
    assert [s.heading for s in doc.sections] == [("Policy",), ("Policy", "Exceptions")]

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Prices"
    sheet.append(["item", "price"])
    sheet.append(["widget", 3])
    buf = io.BytesIO()
    book.save(buf)
    doc = parse(buf.getvalue(), "prices.xlsx")
    assert doc.sections[0].heading == ("Prices",)
    assert doc.sections[0].text == "item: widget; price: 3"


# Bad input: each gets a ParseError whose message names the file and says what is wrong.
def test_pdfs_parse_the_same_from_many_threads() -> None:
    """pdfium is not thread-safe; the service parses uploads in worker threads, so ragline serialises it."""
    from concurrent.futures import ThreadPoolExecutor

    data, name = load("pdf/sample_pdf_1.pdf")
    expected = parse(data, name)
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(lambda _: parse(data, name), range(8)))
    assert all(doc == expected for doc in docs)


def test_corrupt_pdf() -> None:
    with pytest.raises(ParseError, match=r"broken\.pdf: corrupt or unreadable PDF"):
        parse(b"%PDF-1.4\n this is not really a pdf \x00\x01", "broken.pdf")


def test_encrypted_pdf() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ParseError, match=r"locked\.pdf: encrypted PDF"):
        parse(buf.getvalue(), "locked.pdf")


def test_pdf_with_a_huge_text_array_is_read() -> None:
    """Real 10-Q filings carry text arrays of 150,000+ elements (pypdf's default guard refused them at 100,000)."""
    data = one_page_pdf(b"BT /F1 12 Tf 72 720 Td [(Revenue grew 8 percent) " + b"0 ( ) " * 60_000 + b"] TJ ET")
    doc = parse(data, "10q.pdf")
    assert doc.sections[0].text.startswith("Revenue grew 8 percent") and doc.sections[0].page == 1


@needs_tesseract()
def test_a_scanned_pdf_is_read_by_ocr_and_refused_clearly_without_it() -> None:
    doc = parse(*load("pdf/non_text_searchable.pdf"))  # Tesseract, as installed by the README's set-up
    assert doc.sections[0].page == 1
    assert "This is an example of a non-text-searchable PDF. Because it was created from" in doc.sections[0].text
    with pytest.raises(ParseError, match=r"no text layer \(a scanned image\?\); to read it, install Tesseract"):
        parse(*load("pdf/non_text_searchable.pdf"), Limits(ocr="off"))


@needs_tesseract()
def test_a_mixed_pdf_reads_only_its_pages_without_text(tmp_path, monkeypatch) -> None:
    """A text page and a scanned page in one PDF: the first by its text layer, the second by OCR, in order."""
    import pypdfium2 as pdfium

    mixed = pdfium.PdfDocument.new()
    for source in ("pdf/sample_pdf_1.pdf", "pdf/non_text_searchable.pdf"):
        mixed.import_pages(pdfium.PdfDocument(load(source)[0]), [0])
    out = tmp_path / "mixed.pdf"
    mixed.save(str(out))
    calls = []
    from ragline.ingest import ocr

    real = ocr.TesseractOCR.read
    monkeypatch.setattr(ocr.TesseractOCR, "read", lambda self, image: calls.append(image.size) or real(self, image))
    doc = parse(out.read_bytes(), "mixed.pdf")
    assert [s.page for s in doc.sections] == [1, 2] and len(calls) == 1  # one page was read as a picture
    assert "non-text-searchable PDF" in doc.sections[1].text and "non-text-searchable" not in doc.sections[0].text


@needs_tesseract()
def test_images_are_read_by_ocr_each_tiff_frame_a_page(tmp_path) -> None:
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(load("pdf/non_text_searchable.pdf")[0])[0].render(scale=200 / 72).to_pil()
    for suffix in ("png", "jpg", "webp"):
        buf = io.BytesIO()
        page.save(buf, format={"jpg": "JPEG"}.get(suffix, suffix.upper()))
        doc = parse(buf.getvalue(), f"scan.{suffix}")
        assert "regardless of how neatly it is organized" in doc.sections[0].text, suffix
    buf = io.BytesIO()
    page.save(buf, format="TIFF", save_all=True, append_images=[page.rotate(0)])
    assert [s.page for s in parse(buf.getvalue(), "scan.tiff").sections] == [1, 2]
    with pytest.raises(ParseError, match=r"photo\.png: corrupt or unreadable image"):
        parse(b"not a picture at all", "photo.png")
    with pytest.raises(ParseError, match=r"an image is read by OCR, which is off"):
        parse(b"\x89PNG", "photo.png", Limits(ocr="off"))


def test_empty_file() -> None:
    with pytest.raises(ParseError, match=r"empty\.md: empty file"):
        parse(b"  \n", "empty.md")


def test_unknown_type_lists_supported() -> None:
    with pytest.raises(UnsupportedTypeError, match=r"unsupported file type \.exe; supported: .*\.pdf"):
        parse(b"MZ\x90", "tool.exe")


def test_undecodable_text() -> None:
    with pytest.raises(ParseError, match="not UTF-8 text"):
        parse("caf\xe9 cr\xe8me".encode("latin-1"), "menu.txt")


def test_corrupt_office_files() -> None:
    for name in ("a.docx", "b.pptx", "c.xlsx"):
        with pytest.raises(ParseError, match="corrupt or unreadable"):
            parse(b"PK\x03\x04 truncated zip", name)


@pytest.mark.parametrize(("property_title", "shown"), [
    ("0000320193-22-000070", "2022 Q3 AAPL"),  # an SEC accession number: the file's name instead
    ("Microsoft Word - Quarterly report.docx", "Quarterly report"),
    ("Untitled", "2022 Q3 AAPL"),
    ("Form 10-Q for Microsoft Corp filed 10/24/2022", "Form 10-Q for Microsoft Corp filed 10/24/2022"),
    ("年报", "年报"),
])
def test_a_pdf_title_that_is_an_identifier_gives_way_to_the_file_name(property_title: str, shown: str) -> None:
    """Citations show the document's title: "0000320193-22-000070" tells a reader nothing."""
    data = one_page_pdf(b"BT /F1 12 Tf 72 720 Td (Net sales grew) Tj ET", title=property_title)
    assert parse(data, "2022 Q3 AAPL.pdf").title == shown


def test_a_docx_title_property_that_is_an_identifier_gives_way_to_its_heading() -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "10-0042-77"
    document.add_heading("Travel policy", level=1)
    document.add_paragraph("Book flights two weeks ahead.")
    buf = io.BytesIO()
    document.save(buf)
    assert parse(buf.getvalue(), "policy.docx").title == "Travel policy"
