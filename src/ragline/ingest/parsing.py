"""Parsers: bytes of one format to a ParsedDocument (title + sections with heading paths and pages).

Libraries, chosen for size and import time: markdown-it-py (headings, ignoring ``#`` inside code),
selectolax (a C HTML5 parser, ~10x faster than BeautifulSoup, no lxml), pypdfium2 (Chrome's PDF engine in a
wheel: 12x faster than pure-Python pypdf on a 10-Q filing, with cleaner table text), python-docx /
python-pptx / openpyxl (the standard readers of the Office formats). Each library is imported only when a
file of its format arrives.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

from ragline.errors import ParseError, UnsupportedTypeError
from ragline.ingest.bounds import Limits, check_archive, check_text
from ragline.ingest.ocr import INSTALL, ocr_engine
from ragline.types import ParsedDocument, Section

_BLANK_RUNS = re.compile(r"\n\s*\n\s*(\n\s*)+")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_ANCHOR = re.compile(r"<a\s+name=\"[^\"]*\">\s*</a>", re.IGNORECASE)


def _clean(text: str) -> str:
    return _BLANK_RUNS.sub("\n\n", text.replace("\r\n", "\n").replace("\x00", "")).strip()


def decode_text(data: bytes, name: str) -> str:
    """Decode UTF-8 (or UTF-16 with a byte-order mark); anything else is refused, not guessed."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ParseError(
            f"{name}: not UTF-8 text (undecodable byte at offset {err.start}); convert it to UTF-8"
        ) from err


def _stem_title(name: str) -> str:
    return PurePath(name).stem.replace("_", " ").replace("-", " ").strip() or name


_WRITER_PREFIX = re.compile(r"^(?:Microsoft (?:Word|PowerPoint|Excel)|Untitled)\s+-\s+", re.IGNORECASE)
_FILE_SUFFIX = re.compile(r"\.(?:docx?|pptx?|xlsx?|pdf|rtf|odt|txt)$", re.IGNORECASE)
_LETTERS = re.compile(r"[^\W\d_]{3}|[\u2e80-\u9fff\uac00-\ud7af]")  # three letters in a row, or one CJK character


def metadata_title(value: str, fallback: str) -> str:
    """A file's own title property when it reads as one, else ``fallback``.

    Writers fill the property with what is at hand: an identifier ("0000320193-22-000070", an SEC accession
    number), "Untitled", or "Microsoft Word - report.docx". A title without three letters in a row (or a CJK
    character, a word in itself) is not one.
    """
    title = _FILE_SUFFIX.sub("", _WRITER_PREFIX.sub("", " ".join(value.split())))
    return title if _LETTERS.search(title) and title.lower() not in ("untitled", "untitled document") else fallback


def parse_text(data: bytes, name: str) -> ParsedDocument:
    """Plain text: one section."""
    return ParsedDocument(_stem_title(name), [Section(_clean(decode_text(data, name)))])


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def markdown_sections(text: str) -> tuple[str, list[Section]]:
    """Split Markdown at its headings; each section keeps the breadcrumb of headings above it."""
    from markdown_it import MarkdownIt

    text = _FRONT_MATTER.sub("", text.replace("\r\n", "\n"), count=1)
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").parse(text)
    # (line where the heading starts, line after it, level, heading text)
    heads: list[tuple[int, int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None:
            inline = tokens[i + 1].children or [] if i + 1 < len(tokens) else []
            # Text of the heading as rendered: escapes resolved, inline HTML (anchors) dropped.
            heading = "".join(c.content for c in inline if c.type in ("text", "code_inline", "softbreak"))
            heads.append((tok.map[0], tok.map[1], int(tok.tag[1]), " ".join(heading.split())))
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    title = ""

    def add(start: int, end: int) -> None:
        body = _clean(_MD_ESCAPE.sub(r"\1", _ANCHOR.sub("", "\n".join(lines[start:end]))))
        if body:
            sections.append(Section(body, tuple(h for _, h in path)))

    add(0, heads[0][0] if heads else len(lines))
    for n, (_, after, level, heading) in enumerate(heads):
        title = title or (heading if level == 1 else "")
        path[:] = [(lv, h) for lv, h in path if lv < level] + [(level, heading)]
        add(after, heads[n + 1][0] if n + 1 < len(heads) else len(lines))
    return title, sections


def parse_markdown(data: bytes, name: str) -> ParsedDocument:
    """Markdown: sections by heading."""
    title, sections = markdown_sections(decode_text(data, name))
    return ParsedDocument(title or _stem_title(name), sections)


_HTML_BLOCKS = "p,div,li,pre,blockquote,tr,br,dd,dt,table,section,article,ul,ol"


def parse_html(data: bytes, name: str) -> ParsedDocument:
    """HTML: visible text, sectioned by h1–h6."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode_text(data, name))
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    tree.strip_tags(["script", "style", "noscript", "nav", "template", "svg", "head"])
    for node in tree.css("h1,h2,h3,h4,h5,h6"):
        level = (node.tag or "h1")[1]
        node.replace_with(f"\n\x01{level}{node.text(separator=' ', strip=True)}\x01\n")
    for node in tree.css(_HTML_BLOCKS):
        node.insert_after("\n")
    root = tree.body or tree.root
    text = root.text(separator="") if root is not None else ""
    md = re.sub(r"\x01(\d)([^\x01]*)\x01", lambda m: "#" * int(m.group(1)) + " " + m.group(2), text)
    md = "\n".join(line.strip() for line in md.splitlines())
    h1, sections = markdown_sections(md)
    return ParsedDocument(title or h1 or _stem_title(name), sections)


PDFIUM_LOCK = threading.Lock()  # pdfium is one C library state per process, not safe across threads


OCR_DPI = 300  # what Tesseract reads best: text of 10 to 12 points comes out 30 to 40 pixels high
_SCANNED = 16  # a page with fewer characters of text than this is read as a picture (scanned, or a photo)


def parse_pdf(data: bytes, name: str, limits: Limits | None = None) -> ParsedDocument:
    """PDF: one section per page, carrying its page number; pages without a text layer are read by OCR."""
    import pypdfium2 as pdfium

    limits = limits or Limits()
    ocr = ocr_engine(limits.ocr, limits.ocr_languages, limits.ocr_region, limits.ocr_endpoint)
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as err:
            if "password" in str(err).lower():
                raise ParseError(f"{name}: encrypted PDF (password protected); decrypt it first") from err
            raise ParseError(f"{name}: corrupt or unreadable PDF ({err})") from err
        try:
            pages: list[str] = []
            pictures: list[tuple[int, Any]] = []
            for n in range(len(pdf)):
                page = pdf[n]
                text = _page_text(page)
                if len(text.replace(" ", "")) < _SCANNED and ocr is not None and len(pictures) < limits.ocr_pages:
                    pictures.append((n, page.render(scale=OCR_DPI / 72).to_pil()))  # rendered now, read below
                page.close()
                pages.append(text)
            title = str(pdf.get_metadata_dict().get("Title") or "")
        except pdfium.PdfiumError as err:
            raise ParseError(f"{name}: unreadable PDF ({err})") from err
        finally:
            pdf.close()
    for n, picture in pictures:  # outside pdfium's lock: OCR takes seconds a page
        pages[n] = _clean(ocr.read(picture).text) if ocr is not None else pages[n]
    if not any(pages):
        hint = "no text was read from its pages" if ocr is not None else f"to read it, {INSTALL}"
        raise ParseError(f"{name}: the PDF has no text layer (a scanned image?); {hint}")
    sections = [Section(text, (), n) for n, text in enumerate(pages, start=1) if text]
    return ParsedDocument(metadata_title(title, _stem_title(name)), sections)


def _page_text(page: Any) -> str:
    textpage = page.get_textpage()
    try:
        return _clean(textpage.get_text_range())
    finally:
        textpage.close()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def parse_image(data: bytes, name: str, limits: Limits | None = None) -> ParsedDocument:
    """A picture (a scan, a photo of a page, a screenshot): read by OCR; each frame of a TIFF is a page."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    limits = limits or Limits()
    ocr = ocr_engine(limits.ocr, limits.ocr_languages, limits.ocr_region, limits.ocr_endpoint)
    if ocr is None:
        raise ParseError(f"{name}: an image is read by OCR, which is {'off' if limits.ocr == 'off' else 'missing'}; "
                         f"{INSTALL}" + (" and set RAGLINE_OCR=auto" if limits.ocr == "off" else ""))
    try:
        with Image.open(io.BytesIO(data)) as image:
            frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)][: limits.ocr_pages]
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ParseError(f"{name}: corrupt or unreadable image ({err})") from err
    sections = [Section(text, (), n) for n, frame in enumerate(frames, start=1)
                if (text := _clean(ocr.read(frame).text))]
    return ParsedDocument(_stem_title(name), sections)


def parse_docx(data: bytes, name: str) -> ParsedDocument:
    """Word: paragraphs sectioned by Heading styles; tables as rows."""
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:  # python-docx raises zipfile, KeyError or lxml errors on bad input
        raise ParseError(f"{name}: corrupt or unreadable .docx ({type(err).__name__})") from err
    lines: list[str] = []
    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = para.text.strip()
        if not text:
            continue
        match = re.match(r"Heading (\d)", style)
        if match or style == "Title":
            lines.append("#" * (int(match.group(1)) if match else 1) + " " + text)
        else:
            lines.append(text + "\n")
    for table in document.tables:
        lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows)
    title_prop = document.core_properties.title or ""
    h1, sections = markdown_sections("\n".join(lines))
    return ParsedDocument(metadata_title(title_prop, h1 or _stem_title(name)), sections)


def parse_pptx(data: bytes, name: str) -> ParsedDocument:
    """PowerPoint: one section per slide, headed by its title; the slide number is the page."""
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as err:  # zip or XML errors
        raise ParseError(f"{name}: corrupt or unreadable .pptx ({type(err).__name__})") from err
    sections = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        heading = title_shape.text_frame.text.strip() if title_shape is not None else ""
        title_id = title_shape.shape_id if title_shape is not None else None
        texts = [
            shape.text_frame.text.strip()
            for shape in slide.shapes
            if shape.has_text_frame and shape.shape_id != title_id and shape.text_frame.text.strip()
        ]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text.strip())
        body = _clean("\n\n".join(t for t in texts if t))
        if body or heading:
            sections.append(Section(body or heading, (heading,) if heading else (), number))
    return ParsedDocument(_stem_title(name), sections)


def _rows_to_lines(rows: Iterable[list[str]]) -> list[str]:
    """Spreadsheet rows as ``header: value`` lines, so each row reads on its own in a chunk."""
    lines: list[str] = []
    header: list[str] = []
    for row in rows:
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if not header:
            header = cells
            continue
        pairs = [f"{h or f'column {i + 1}'}: {v}" for i, (h, v) in enumerate(zip(header, cells, strict=False)) if v]
        lines.append("; ".join(pairs))
    return lines or [" | ".join(header)]


def parse_csv(data: bytes, name: str) -> ParsedDocument:
    """CSV: one line per row, each value named by its column."""
    text = decode_text(data, name)
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel()
    rows = list(csv.reader(io.StringIO(text), dialect))
    return ParsedDocument(_stem_title(name), [Section("\n".join(_rows_to_lines(rows)))])


def parse_xlsx(data: bytes, name: str) -> ParsedDocument:
    """Excel: one section per sheet, headed by the sheet name."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # zip, XML or openpyxl's own errors
        raise ParseError(f"{name}: corrupt or unreadable .xlsx ({type(err).__name__})") from err
    sections = []
    for sheet in book.worksheets:
        rows = ([("" if v is None else str(v)) for v in row] for row in sheet.iter_rows(values_only=True))
        body = "\n".join(_rows_to_lines(rows)).strip()
        if body:
            sections.append(Section(body, (sheet.title,)))
    book.close()
    return ParsedDocument(_stem_title(name), sections)


PARSERS: dict[str, Callable[..., ParsedDocument]] = {
    ".txt": parse_text,
    ".text": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".pptx": parse_pptx,
    ".xlsx": parse_xlsx,
    ".csv": parse_csv,
    **dict.fromkeys(IMAGE_SUFFIXES, parse_image),
}
READS_PICTURES = (".pdf", *IMAGE_SUFFIXES)  # parsers that take the limits (which say whether OCR may run)
CORPUS_SUFFIXES = (".jsonl", ".jsonl.gz")
SUPPORTED = tuple(sorted(PARSERS)) + CORPUS_SUFFIXES


ARCHIVES = (".docx", ".pptx", ".xlsx")


def parse(data: bytes, name: str, limits: Limits | None = None) -> ParsedDocument:
    """Parse one file's bytes by its name's suffix; raise ParseError with the reason when it cannot."""
    limits = limits or Limits()
    suffix = PurePath(name).suffix.lower()
    parser = PARSERS.get(suffix)
    if parser is None:
        raise UnsupportedTypeError(
            f"{name}: unsupported file type {suffix or '(no extension)'}; supported: {', '.join(SUPPORTED)}"
        )
    if not data.strip():
        raise ParseError(f"{name}: empty file")
    if suffix in ARCHIVES:
        check_archive(data, name, limits)
    doc = check_text(parser(data, name, limits) if suffix in READS_PICTURES else parser(data, name), name, limits)
    if not any(s.text.strip() for s in doc.sections):
        raise ParseError(f"{name}: no text found")
    return doc
