"""Bounded work per document: what one file may cost before it is refused, with its reason.

An Office file is a zip and a ``.jsonl.gz`` corpus is a gzip stream: a few megabytes can expand to gigabytes
(a "decompression bomb"). Zip members are judged by the sizes their central directory declares, before anything
is inflated; that is sound because Python's zipfile never returns more bytes than a member declares (a member
that lies fails its CRC check instead). A gzip stream declares nothing, so it is judged while it is read: its
expansion so far against the compressed bytes consumed, and no line (one record) longer than a file may be.
Whatever a parser returns is then held to a number of characters, which bounds chunking and embedding.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ragline.errors import ParseError
from ragline.types import ParsedDocument

if TYPE_CHECKING:
    from ragline.settings import Settings

MIB = 1024 * 1024
# Below this expanded size a member's ratio is not judged: tiny XML parts compress very well and cost nothing.
_RATIO_FLOOR = MIB


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may cost: bytes on disk, bytes once expanded, compression ratio, characters of text."""

    file_bytes: int = 100 * MIB
    expanded_bytes: int = 128 * MIB
    ratio: int = 100
    document_chars: int = 20_000_000
    ocr: str = "auto"  # and what parsing may do: read pictures (auto: when Tesseract is installed; off)
    ocr_languages: str = "eng"
    ocr_pages: int = 300  # pages of one document read by OCR (a page takes seconds)
    ocr_region: str | None = None  # Textract's region and endpoint (RAGLINE_OCR=textract)
    ocr_endpoint: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings configure."""
        return cls(settings.max_file_bytes, settings.max_expanded_bytes, settings.max_compression_ratio,
                   settings.max_document_chars, settings.ocr, settings.ocr_languages, settings.max_ocr_pages,
                   settings.aws_region, settings.endpoint_for("textract"))


def _mb(n: float) -> str:
    if n < 1024:
        return f"{n:,.0f} bytes"
    return f"{n / MIB:,.0f} MiB" if n >= MIB else f"{n / 1024:,.0f} KiB"


def check_archive(data: bytes, name: str, limits: Limits) -> None:
    """Refuse a zip-based file (docx, pptx, xlsx) that would expand past the limits; nothing is inflated here."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ParseError(f"{name}: corrupt or unreadable (not a zip archive: {err})") from err
    total = sum(m.file_size for m in members)
    if total > limits.expanded_bytes:
        raise ParseError(f"{name}: expands to {_mb(total)}, more than the {_mb(limits.expanded_bytes)} limit "
                         "(RAGLINE_MAX_EXPANDED_BYTES); a decompression bomb?")
    packed = sum(m.compress_size for m in members)
    parts = [(m.filename, m.file_size, m.compress_size) for m in members]
    for part, size, compressed in [*parts, ("(all parts together)", total, packed)]:
        ratio = size / max(compressed, 1)
        if size > _RATIO_FLOOR and ratio > limits.ratio:
            raise ParseError(f"{name}: {part} expands {ratio:,.0f} times (to {_mb(size)}), more than the "
                             f"{limits.ratio}:1 limit (RAGLINE_MAX_COMPRESSION_RATIO); a decompression bomb?")


def check_text(doc: ParsedDocument, name: str, limits: Limits) -> ParsedDocument:
    """``doc``, unless its text is longer than a document may be."""
    chars = sum(len(s.text) for s in doc.sections)
    if chars > limits.document_chars:
        raise ParseError(f"{name}: yields {chars:,} characters of text, more than the {limits.document_chars:,} "
                         "limit (RAGLINE_MAX_DOCUMENT_CHARS); split it")
    return doc


_PIECE = 64 * 1024


def _pieces(raw: IO[bytes], name: str, limits: Limits, gz: bool) -> Iterator[bytes]:
    """The file's bytes in pieces; a gzip stream inflated a bounded piece at a time and judged as it goes.

    Decompressing by hand (not ``gzip.GzipFile``) is what lets each piece's cost be known exactly: how many
    compressed bytes produced it. Concatenated gzip members, which ``gzip`` writes and reads, are followed.
    """
    if not gz:
        while piece := raw.read(_PIECE):
            yield piece
        return
    inflater = zlib.decompressobj(wbits=31)
    fed = False  # the current member has been given input
    read = expanded = 0
    data = b""  # read from the file, not yet given to the inflater
    while True:
        source = inflater.unconsumed_tail
        if not source:
            if not data:
                data = raw.read(_PIECE)
                read += len(data)
                if not data:
                    if fed and not inflater.eof:
                        raise ParseError(f"{name}: corrupt or truncated gzip stream (it ends mid-member)")
                    return
            source, data, fed = data, b"", True
        try:
            piece = inflater.decompress(source, _PIECE)
        except zlib.error as err:
            raise ParseError(f"{name}: corrupt gzip stream ({err})") from err
        if inflater.eof:  # the next member, if any, starts in what this one left over
            data, fed = inflater.unused_data + data, False
            inflater = zlib.decompressobj(wbits=31)
        used = read - len(data) - len(inflater.unconsumed_tail)
        expanded += len(piece)
        if expanded > _PIECE and expanded > limits.ratio * max(used, 1):
            raise ParseError(f"{name}: expands more than {limits.ratio} times ({_mb(expanded)} from {_mb(used)} so "
                             "far; RAGLINE_MAX_COMPRESSION_RATIO); a decompression bomb?")
        if piece:
            yield piece


def bounded_lines(path: Path, limits: Limits) -> Iterator[tuple[int, str]]:
    """(line number, text) of a JSONL file, gzip-compressed or not, one line in memory at a time.

    A line longer than a file may be, or a gzip stream that expands more than the ratio allows, is refused with
    the reason; the lines before it were already yielded.
    """
    number = 0
    partial: list[bytes] = []  # the line being read, in pieces (joined once its end is found)
    held = 0
    with path.open("rb") as raw:
        for piece in _pieces(raw, path.name, limits, path.name.lower().endswith(".gz")):
            if b"\n" not in piece:
                partial.append(piece)
                held += len(piece)
            else:
                first, *lines, rest = piece.split(b"\n")
                for line in [b"".join([*partial, first]), *lines]:
                    number += 1
                    yield number, _decoded(line, path.name, number)
                partial, held = [rest], len(rest)
            if held > limits.file_bytes:
                raise ParseError(f"{path.name}:{number + 1}: one record is longer than the "
                                 f"{_mb(limits.file_bytes)} limit (RAGLINE_MAX_FILE_BYTES)")
    if held:
        yield number + 1, _decoded(b"".join(partial), path.name, number + 1)


def _decoded(line: bytes, name: str, number: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError(f"{name}:{number}: not UTF-8 text") from err
