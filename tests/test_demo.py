"""The demo of `make run`, as a user sees it: the bundled Lex guide ingested with the default settings, and the
default (extractive) answer to "What is Amazon Lex?" is the guide's own definition, cited to what-is.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.ingest.pipeline import source_items
from ragline.types import Query

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "amazon-lex-developer-guide.jsonl.gz"


@pytest.mark.slow
def test_the_demo_question_gets_the_definition_cited(make_app) -> None:
    app = make_app(chat_model="extractive", cache=False)
    assert app.settings.fusion == "rrf-firsts"  # the defaults, as make run has them
    report = app.ingestor.run(source_items([SAMPLE]))
    assert report.documents == 242 and not report.failed
    answer = app.engine.ask(Query("What is Amazon Lex?"))
    assert answer.text.startswith("Amazon Lex is an AWS service for building conversational interfaces for "
                                  "applications using voice and text [")
    cited = answer.sources[answer.citations[0].number - 1]
    assert cited.doc_id == "amazon-lex-developer-guide/what-is.md" and cited.excerpt.startswith("Amazon Lex is an")
    steps = app.engine.ask(Query("How do I delete a bot?"))
    assert "delete" in steps.text.lower() and steps.citations
