"""The relevance gate's second look: a question that names something only a lower-ranked passage contains is
answered from that passage instead of declined; a question nothing answers is still declined."""

from __future__ import annotations

import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.query import engine as engine_module
from ragline.query.engine import Query

from conftest import write

NEAR = "Amazon Forecast datasets have field names. A field name in Amazon Forecast must follow the naming rules.\n"
QUESTION = "Is Zebrafield an Amazon Forecast reserved field name?"


@pytest.fixture
def forecast(make_app, tmp_path):
    app = make_app(chat_model="extractive", k=2)
    for n in range(4):  # close to the question in meaning, but none names what it asks about
        write(tmp_path / "kb", f"rules{n}.md", f"# Amazon Forecast field names {n}\n\n{NEAR}")
    write(tmp_path / "kb", "reserved.md", "# Reserved words\n\nThe words Zebrafield and Quagga are reserved.\n")
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    return app


def test_the_passage_naming_what_is_asked_is_looked_for_past_the_best_k(forecast, monkeypatch) -> None:
    first = forecast.engine.retrieve(QUESTION, k=2, mode="vector")
    assert all("Zebrafield" not in h.chunk.text for h in first)  # the best two never name it
    answer = forecast.engine.ask(Query(QUESTION, k=2, mode="vector"))
    assert not answer.text.startswith("I don't know"), answer.text
    assert "reserved.md" in [s.doc_id.rsplit("/", 1)[-1] for s in answer.sources]
    monkeypatch.setattr(engine_module, "SECOND_LOOK", 0)  # without the second look: declined, as before
    before = forecast.engine.ask(Query(QUESTION, k=2, mode="vector", use_cache=False))
    assert before.text.startswith("I don't know") and "Zebrafield" in before.text


def test_a_question_nothing_answers_is_still_declined(forecast) -> None:
    answer = forecast.engine.ask(Query("Is Okapifield an Amazon Forecast reserved field name?", k=2, mode="vector"))
    assert answer.text.startswith("I don't know") and "Okapifield" in answer.text


def test_the_second_look_of_a_hybrid_search_tries_the_passages_holding_the_questions_words(
        make_app, tmp_path, monkeypatch) -> None:
    """Fusion that trusts the vector search (here wholly: fusion_alpha 1) ranks the one passage holding the word
    asked about last; the second look also tries BM25's best, so the question is answered from it."""
    app = make_app(chat_model="extractive", k=2, fusion_alpha=1.0)
    for n in range(4):
        write(tmp_path / "kb", f"rules{n}.md", f"# Amazon Forecast field names {n}\n\n{NEAR}")
    write(tmp_path / "kb", "reserved.md", "# Reserved words\n\nThe words Zebrafield and Quagga are reserved.\n")
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    assert all("Zebrafield" not in h.chunk.text for h in app.engine.retrieve(QUESTION, k=2, mode="hybrid"))
    assert "Zebrafield" in app.engine.retrieve(QUESTION, k=1, mode="bm25")[0].chunk.text
    monkeypatch.setattr(engine_module, "SECOND_LOOK", 0)  # only BM25's best are looked at
    answer = app.engine.ask(Query(QUESTION, k=2, mode="hybrid", use_cache=False))
    assert not answer.text.startswith("I don't know"), answer.text
    assert "reserved.md" in [s.doc_id.rsplit("/", 1)[-1] for s in answer.sources]
    monkeypatch.setattr(engine_module, "SECOND_LOOK_WORDS", 0)
    declined = app.engine.ask(Query(QUESTION, k=2, mode="hybrid", use_cache=False))
    assert declined.text.startswith("I don't know") and "Zebrafield" in declined.text


def test_a_possessive_is_not_a_word_the_passages_must_mention() -> None:
    """"Microsoft's" asks about Microsoft: the gate's coverage does not count a lone "s" the passages never say."""
    from ragline.providers.local.verifier import terms

    assert terms("How has Microsoft's revenue changed?") == terms("How has Microsoft revenue changed?")
    assert "s" not in terms("Apple\u2019s net sales")
