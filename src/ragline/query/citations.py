"""Citation checking: find the ``[n]`` markers in an answer, keep those that name a retrieved source."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragline.types import Citation, Source

# [1], [1, 2], [1][2], [1-2] are all read; anything else in brackets is left alone.
MARKER = re.compile(r"\[(\d+(?:\s*[,;\-–]\s*\d+)*)\]")


def marker_numbers(group: str) -> list[int]:
    """The source numbers in one marker's brackets: ``1, 2``, ``1-3``."""
    parts = [p for p in re.split(r"\s*[,;]\s*", group) if p]
    numbers: list[int] = []
    for part in parts:
        bounds = re.split(r"\s*[\-–]\s*", part)
        if len(bounds) == 2 and int(bounds[1]) - int(bounds[0]) < 20:
            numbers.extend(range(int(bounds[0]), int(bounds[1]) + 1))
        else:
            numbers.append(int(bounds[0]))
    return numbers


def check_citations(text: str, sources: Sequence[Source]) -> tuple[str, list[Citation], int]:
    """The answer with invalid markers removed, its valid citations (first use first), and how many were invalid."""
    by_number = {s.number: s for s in sources}
    citations: list[Citation] = []
    seen: set[int] = set()
    invalid = 0
    out: list[str] = []
    last = 0
    for match in MARKER.finditer(text):
        numbers = marker_numbers(match.group(1))
        good = [n for n in numbers if n in by_number]
        invalid += len(numbers) - len(good)
        out.append(text[last : match.start()])
        position = sum(len(x) for x in out)
        if good:
            marker = "[" + ", ".join(str(n) for n in dict.fromkeys(good)) + "]"
            out.append(marker)
            for n in dict.fromkeys(good):
                if n not in seen:
                    seen.add(n)
                    citations.append(Citation(n, by_number[n].doc_id, position, position + len(marker)))
        last = match.end()
    out.append(text[last:])
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", "".join(out)) if invalid else "".join(out)
    return cleaned, citations, invalid
