from __future__ import annotations

import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.providers.local.lancedb import where_clause
from ragline.query.retrieval import bm25_weight, fuse, fuse_convex
from ragline.types import Chunk, Hit

from conftest import write

DOCS = {
    "errors.md": "# Error codes\n\nWhen the gateway returns QZX-7741 the upstream certificate has expired. "
    "Renew it in the console.",
    # Decoys: codes that look alike to the embedding model but share no search term with QZX-7741.
    "gateway.md": "# Gateway error codes\n\nQZK-7714: upstream timeout. QXZ-7417: upstream refused. "
    "ZQX-4771: rate limited. QZV-1477: bad request.",
    "codes.md": "# Status codes\n\nQKX-7141 means the token expired. ZXQ-7714 means the quota is exhausted.",
    "network.md": "# Networking\n\nA slow connection usually comes from packet loss on the uplink. "
    "Check cables and the switch.",
    "billing.md": "# Billing\n\nInvoices are issued on the first business day of each month. "
    "Payment is due within thirty days.",
    "pets.md": "# Pets\n\nCats sleep for most of the day and are active at dawn and dusk.",
    "travel.md": "# Travel\n\nPassports must be valid for six months beyond the date of arrival.",
}


@pytest.fixture
def app(make_store_app, tmp_path):
    make_app = make_store_app
    app = make_app()
    folder = tmp_path / "kb"
    for name, text in DOCS.items():
        write(folder, name, text)
    paths = expand_paths([str(folder)])
    app.ingestor.run(source_items(paths), tags=("team=ops",))
    write(tmp_path / "es", "gatos.md", "# Gatos\n\nLos gatos duermen casi todo el día.")
    spanish = make_app(parts={"registry": app.registry, "store": app.store}, language="es")
    spanish.ingestor.run(source_items(expand_paths([str(tmp_path / "es")])), tags=("team=sales",))
    return app


def names(hits: list[Hit]) -> list[str]:
    return [h.chunk.doc_id.rsplit("/", 1)[1] for h in hits]


def test_hybrid_finds_an_exact_identifier_that_vector_search_misses(app) -> None:
    question = "QZX-7741"
    assert "errors.md" not in names(app.engine.retrieve(question, k=2, mode="vector"))
    assert names(app.engine.retrieve(question, k=5, mode="bm25")) == ["errors.md"]
    assert names(app.engine.retrieve(question, k=1, mode="hybrid")) == ["errors.md"]


def test_hybrid_finds_a_paraphrase_that_bm25_misses(app) -> None:
    question = "how do I get charged?"
    assert "billing.md" not in names(app.engine.retrieve(question, k=1, mode="bm25"))
    assert names(app.engine.retrieve(question, k=1, mode="vector")) == ["billing.md"]
    assert names(app.engine.retrieve(question, k=1, mode="hybrid")) == ["billing.md"]


def test_filters_language_source_and_tags(app) -> None:
    question = "cats sleep all day"
    assert names(app.engine.retrieve(question, k=1)) == ["pets.md"]
    assert names(app.engine.retrieve(question, k=1, filters={"language": "es"})) == ["gatos.md"]
    assert names(app.engine.retrieve(question, k=10, filters={"team": "sales"})) == ["gatos.md"]
    ops = names(app.engine.retrieve(question, k=10, filters={"team": "ops"}))
    assert "gatos.md" not in ops and len(ops) == 7
    source = next(h.chunk.doc_id for h in app.engine.retrieve("passports", k=1))
    assert names(app.engine.retrieve(question, k=5, filters={"source": source})) == ["travel.md"]


def test_another_tenant_sees_nothing(app, make_store_app) -> None:
    other = make_store_app(parts={"store": app.store}, tenant="acme")
    assert other.engine.retrieve("cats sleep", k=5) == []
    # a tenant filter in the request cannot widen the scope
    assert other.engine.retrieve("cats sleep", k=5, filters={"tenant": "default"}) == []


def test_where_clause_quotes_values() -> None:
    clause = where_clause({"language": "en", "owner": "o'brien", "source": "docs/a_b"})
    assert clause == (
        "language = 'en' AND array_has(tags, 'owner=o''brien') AND "
        "(doc_id = 'docs/a_b' OR doc_id LIKE 'docs/a\\_b%')"
    )


def test_reciprocal_rank_fusion() -> None:
    def hit(cid: str) -> Hit:
        return Hit(Chunk(cid, "d", 0, cid), 0.0)

    fused = fuse({"vector": [hit("a"), hit("b")], "bm25": [hit("b"), hit("c")]}, k=3, rrf_k=60)
    assert [h.chunk.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].found_by == ("vector", "bm25")


def test_a_strong_vector_hit_survives_fusion_when_bm25_is_flat() -> None:
    """"What is Amazon Lex?" in the Lex guide: every chunk says "Amazon Lex", BM25 barely separates them, and the
    definition is the vector search's first hit and absent from BM25's list: RRF buried it, convex fusion keeps it."""
    def hit(cid: str, score: float) -> Hit:
        return Hit(Chunk(cid, "d", 0, cid), score)

    vector = [hit("definition", 0.894), hit("first-time", 0.860), hit("index", 0.826), hit("security", 0.822)]
    flat_bm25 = [hit("index", 1.270), hit("security", 1.269), hit("history", 1.266), hit("first-time", 1.239)]
    rankings = {"vector": vector, "bm25": flat_bm25}
    assert fuse(rankings, k=5)[0].chunk.id != "definition"
    assert [h.chunk.id for h in fuse_convex(rankings, k=2, depth=4)] == ["definition", "first-time"]
    kept = [h.chunk.id for h in fuse(rankings, k=3, keep_vector_first=True)]
    assert "definition" in kept and kept[:2] == [h.chunk.id for h in fuse(rankings, k=2)]  # in the last place
    # where BM25 discriminates, it counts in full: an exact identifier wins over a near paraphrase
    sharp_bm25 = [hit("identifier", 9.0), hit("index", 1.0)]
    vector = [hit("paraphrase", 0.80), hit("identifier", 0.74)]
    assert fuse_convex({"vector": vector, "bm25": sharp_bm25}, k=1, depth=2)[0].chunk.id == "identifier"


def test_adaptive_fusion_weighs_bm25_by_how_well_it_separates_the_chunks() -> None:
    """A company's name in its own 10-Q: every chunk matches it and BM25's best scores barely differ, so BM25 is
    noise and the vector search decides; a rare identifier makes BM25 sharp, and then it counts in full."""
    def hits(*pairs: tuple[str, float]) -> list[Hit]:
        return [Hit(Chunk(cid, "d", 0, cid), score) for cid, score in pairs]

    flat = hits(*[(f"filler{i}", 10.0 - i * 0.15) for i in range(12)])
    sharp = hits(("identifier", 20.0), *[(f"filler{i}", 9.0 - i * 0.1) for i in range(11)])
    assert bm25_weight(flat) < 0.25  # its best is 1.16 x its 10th
    assert bm25_weight(sharp) == 1.0
    assert bm25_weight(sharp[:3]) == 1.0  # BM25 matched few chunks: it discriminates
    vector = hits(("revenue", 0.80), ("filler0", 0.77), ("identifier", 0.73))
    fixed = fuse_convex({"vector": vector, "bm25": flat}, k=1, alpha=0.7, depth=12)
    adaptive = fuse_convex({"vector": vector, "bm25": flat}, k=1, alpha=0.7, depth=12, adaptive=True)
    assert fixed[0].chunk.id == "filler0" and adaptive[0].chunk.id == "revenue"
    assert fuse_convex({"vector": vector, "bm25": sharp}, k=1, alpha=0.7, depth=12,
                       adaptive=True)[0].chunk.id == "identifier"
    # the vector search's first hit is kept, in the last place, when the fused order leaves it out
    kept = fuse_convex({"vector": vector, "bm25": sharp}, k=2, alpha=0.3, depth=12, keep_vector_first=True)
    assert [h.chunk.id for h in kept] == ["identifier", "revenue"]


def test_hybrid_takes_fusion_depth_chunks_from_each_ranking(app, make_store_app, monkeypatch) -> None:
    shallow = make_store_app(parts={"store": app.store, "registry": app.registry}, fusion_depth=3)
    asked: list[tuple[str, int]] = []
    for name in ("search_vector", "search_text"):
        search = getattr(app.store, name)

        def recording(query, limit, filters, search=search, name=name):
            asked.append((name, limit))
            return search(query, limit, filters)

        monkeypatch.setattr(app.store, name, recording)
    # The identifier is first in BM25 and absent from the vector list: three from each ranking still find it.
    assert names(shallow.engine.retrieve("QZX-7741", k=1, mode="hybrid")) == ["errors.md"]
    assert sorted(asked) == [("search_text", 3), ("search_vector", 3)]
    asked.clear()
    assert len(shallow.engine.retrieve("upstream gateway errors", k=6, mode="hybrid")) == 6  # never fewer than k
    assert sorted(asked) == [("search_text", 6), ("search_vector", 6)]
    asked.clear()
    shallow.engine.retrieve("cats", k=2, mode="vector")  # one ranking, nothing to fuse: k is enough
    assert asked == [("search_vector", 2)]
    asked.clear()
    app.engine.retrieve("cats", k=2, mode="hybrid")  # the default: 50 from each
    assert sorted(asked) == [("search_text", 50), ("search_vector", 50)]


def test_a_follow_up_that_points_back_is_searched_with_the_previous_question(app) -> None:
    from ragline.query.retrieval import search_text
    from ragline.types import Message, Query

    history = (Message("user", "What must a passport have for travel?"), Message("assistant", "It must be valid."))
    assert search_text("How long must it be valid?", history) == "How long must it be valid? passport travel"
    assert search_text("What are the invoice terms?", history) == "What are the invoice terms?"  # stands alone
    answer = app.engine.ask(Query("And for how long must it be?", k=1, history=history, use_cache=False))
    assert answer.sources[0].doc_id.endswith("travel.md")


def test_a_documents_passages_come_back_in_reading_order_within_its_tenant(app, tmp_path) -> None:
    """``Store.passages``: what the MCP resources and get_document read; a filtered scan, never another tenant's."""
    long = "# Handbook\n\n" + "\n\n".join(f"## Part {n}\n\n" + f"Paragraph {n} of the handbook. " * 40
                                          for n in range(6))
    write(tmp_path / "hb", "handbook.md", long)
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "hb")])))
    doc_id = next(r.doc_id for r in app.registry.list(app.settings.tenant) if r.doc_id.endswith("handbook.md"))
    chunks = app.store.passages({"tenant": app.settings.tenant, "doc_id": doc_id}, 1000)
    assert len(chunks) == app.registry.get(app.settings.tenant, doc_id).chunks > 1
    assert [c.ordinal for c in chunks] == sorted(c.ordinal for c in chunks)
    assert "Paragraph 0" in chunks[0].text and "Paragraph 5" in chunks[-1].text
    assert app.store.passages({"tenant": "someone-else", "doc_id": doc_id}, 1000) == []
    assert len(app.store.passages({"tenant": app.settings.tenant, "doc_id": doc_id}, 2)) == 2
