from __future__ import annotations

from ragline.ingest.chunking import Chunker
from ragline.providers.local.minilm import MiniLMEmbedder
from ragline.types import ParsedDocument, Section


def test_chunks_fit_the_token_budget_with_overlap(minilm: MiniLMEmbedder) -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(120)]
    doc = ParsedDocument("Long", [Section(" ".join(sentences), ("Long", "Body"), page=3)])
    chunker = Chunker(minilm.tokenizer, minilm.count_tokens, tokens=64, overlap=16)
    plans = chunker.plan(doc)
    assert len(plans) > 5
    assert all(minilm.count_tokens(p.text) <= 64 for p in plans)
    assert all(p.heading == "Long > Body" and p.page == 3 for p in plans)
    # overlap: each chunk starts with text the previous one ended with
    assert any(plans[i].text.split()[0] in plans[i - 1].text for i in range(1, len(plans)))


def test_small_sections_are_packed_but_pages_are_not_mixed(minilm: MiniLMEmbedder) -> None:
    doc = ParsedDocument("D", [
        Section("Alpha text.", ("D", "A"), 1),
        Section("Beta text.", ("D", "A", "B"), 1),
        Section("Gamma text.", ("D", "C"), 2),
    ])
    plans = Chunker(minilm.tokenizer, minilm.count_tokens, tokens=100).plan(doc)
    assert [(p.heading, p.page) for p in plans] == [("D > A", 1), ("D > C", 2)]
    assert plans[0].text == "Alpha text.\n\nB\nBeta text."


def test_chunk_ids_are_stable_and_content_addressed(minilm: MiniLMEmbedder) -> None:
    chunker = Chunker(minilm.tokenizer, minilm.count_tokens, tokens=50)
    doc = ParsedDocument("T", [Section("Some words here.")])
    a = chunker.chunk(doc, doc_id="d", content_hash="h1", tenant="t", language="en")
    b = chunker.chunk(doc, doc_id="d", content_hash="h1", tenant="t", language="en")
    c = chunker.chunk(doc, doc_id="d", content_hash="h2", tenant="t", language="en")
    assert [x.id for x in a] == [x.id for x in b]
    assert a[0].id != c[0].id
    assert a[0].context_text() == "T\n\nSome words here."
