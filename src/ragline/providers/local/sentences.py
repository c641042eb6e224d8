r"""Markdown-aware sentence segmentation, for the extractive answerer.

Passages are Markdown as the documentation writes it: headings with ``<a name>`` anchors, ``\.`` escapes, links,
list items, numbered steps, tables and code. A unit is a sentence of a paragraph, one list item or step, or one
table row (its cells joined); headings and code are not answers and are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANCHOR = re.compile(r"<a\s+name=\"[^\"]*\"\s*>\s*</a>|<[^>\n]{1,80}>", re.IGNORECASE)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~=\"'])")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")
# Bracketed numbers in a source ("see [2]", "items[0]") would read as citation markers once quoted.
_BRACKETED_NUMBER = re.compile(r"\s*\[\d+(?:\s*[,;\-–]\s*\d+)*\]")
_ITEM = re.compile(r"^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
# A sentence ends at . ! ? (or after a closing quote or bracket that follows one) before space and a capital, digit
# or quote; not after an abbreviation.
_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')]))\s+(?=[A-Z0-9\"'(“])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "Inc.", "Corp.", "approx.", "No.", "Fig.", "U.S.")


@dataclass(frozen=True, slots=True)
class Unit:
    """One answerable piece of a passage: its text, kind (sentence, item, step, row) and position."""

    text: str
    kind: str
    position: int
    paragraph: int


def clean(text: str) -> str:
    """Markdown markup removed: anchors and tags, escapes, images, links (their text kept), emphasis."""
    text = _ANCHOR.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _ESCAPE.sub(r"\1", text)
    text = _BRACKETED_NUMBER.sub("", text)
    return " ".join(_EMPHASIS.sub("", text).split())


def split_paragraph(text: str) -> list[str]:
    """Sentences of one paragraph of plain text."""
    pieces = _END.split(text)
    out: list[str] = []
    for piece in pieces:
        if out and out[-1].endswith(_ABBREVIATIONS):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return [p.strip() for p in out if p.strip()]


def units(markdown: str) -> list[Unit]:
    """The passage's answerable units, in order."""
    out: list[Unit] = []
    paragraph: list[str] = []
    block = 0
    in_code = False

    def add(text: str, kind: str) -> None:
        text = clean(text)
        if len(text.split()) >= 3 and any(c.isalpha() for c in text):
            out.append(Unit(text, kind, len(out), block))

    def flush() -> None:
        nonlocal block
        if paragraph:
            for sentence in split_paragraph(clean(" ".join(paragraph))):
                add(sentence, "sentence")
            paragraph.clear()
            block += 1

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            flush()
            in_code = not in_code
            continue
        if in_code or stripped.startswith("#") or _TABLE_RULE.match(stripped):
            flush()
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith("|"):
            flush()
            cells = [c.strip() for c in stripped.strip("|").split("|") if c.strip()]
            if len(cells) >= 2:
                add(": ".join(cells[:2]) + (f" ({', '.join(cells[2:])})" if cells[2:] else ""), "row")
            continue
        item = _ITEM.match(line)
        if item:
            flush()
            add(item.group(2), "step" if item.group(1) else "item")
            continue
        paragraph.append(stripped)
    flush()
    return out
