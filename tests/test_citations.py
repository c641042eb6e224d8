from __future__ import annotations

from ragline.query.citations import check_citations
from ragline.types import Source


def sources(n: int) -> list[Source]:
    return [Source(i, f"doc{i}.md", f"T{i}", "", None, 1.0, "x") for i in range(1, n + 1)]


def test_valid_markers_are_kept_in_first_use_order() -> None:
    text, cites, invalid = check_citations("Alpha [2]. Beta [1, 2]. Gamma [1][2].", sources(3))
    assert text == "Alpha [2]. Beta [1, 2]. Gamma [1][2]."
    assert [c.number for c in cites] == [2, 1]
    assert [c.doc_id for c in cites] == ["doc2.md", "doc1.md"]
    assert invalid == 0
    assert text[cites[0].start : cites[0].end] == "[2]"


def test_markers_to_sources_that_were_not_retrieved_are_removed_and_counted() -> None:
    text, cites, invalid = check_citations("Alpha [7]. Beta [1, 9]. Range [1-3].", sources(2))
    assert text == "Alpha. Beta [1]. Range [1, 2]."
    assert [c.number for c in cites] == [1, 2]
    assert invalid == 3


def test_text_without_markers_or_with_other_brackets() -> None:
    assert check_citations("No citations [here] or [a1].", sources(2)) == ("No citations [here] or [a1].", [], 0)
