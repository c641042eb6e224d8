"""The Responder contract, run over every implementation: the prompted chat model (the echo fake behind the
retry policy, so the prompt is real), the extractive answerer (the real MiniLM), and a knowledge base's
RetrieveAndGenerate (boto3 against the loopback). Every one puts ``Sources`` first, then text, and each ``[n]``
it writes names one of those sources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragline.providers.aws.knowledge_base import KnowledgeBaseAnswerer
from ragline.providers.local.extractive import ExtractiveAnswerer
from ragline.query.citations import check_citations
from ragline.query.responders import PromptedResponder
from ragline.resilience import ResilientChatModel
from ragline.seams import Responder
from ragline.testing.aws import FakeAWSModels
from ragline.testing.fakes import EchoChatModel, FakeEmbedder
from ragline.types import Query, Source, Sources, Token

SOURCES = [Source(1, "lex.md", "What is Amazon Lex?", "", None, 0.9,
                  "Amazon Lex is an AWS service for building conversational interfaces using voice and text."),
           Source(2, "polly.md", "What is Amazon Polly?", "", None, 0.5, "Amazon Polly turns text into speech.")]
PASSAGES = [{"id": "lex", "title": "What is Amazon Lex?", "language": "en", "tenant": "acme",
             "uri": "s3://docs/acme/lex.md", "text": SOURCES[0].excerpt}]


@pytest.fixture(params=["prompted", "extractive", "knowledge-base"])
def responder(request: pytest.FixtureRequest) -> Iterator[Responder]:
    if request.param == "prompted":
        yield PromptedResponder(ResilientChatModel([EchoChatModel()]), FakeEmbedder().count_tokens)
    elif request.param == "extractive":
        yield ExtractiveAnswerer(request.getfixturevalue("minilm"))
    else:
        request.getfixturevalue("aws_env")
        with FakeAWSModels(passages=PASSAGES) as aws:
            yield KnowledgeBaseAnswerer("KB12345678", "anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1",
                                        endpoint_url=aws.endpoint_url, tenant_attribute="tenant")


def test_sources_first_then_text_whose_markers_name_them(responder: Responder) -> None:
    given = [] if responder.retrieves else SOURCES
    events = list(responder.respond(Query("What is Amazon Lex?", k=2), given, tenant="acme", deadline=None))
    assert isinstance(events[0], Sources) and sum(isinstance(e, Sources) for e in events) == 1
    text = "".join(e.text for e in events if isinstance(e, Token))
    assert "conversational interfaces" in text
    _, citations, invalid = check_citations(text, events[0].sources)
    assert citations and invalid == 0


def test_describes_itself(responder: Responder) -> None:
    assert isinstance(responder.name, str) and responder.name
    assert isinstance(responder.accepts_images, bool) and isinstance(responder.retrieves, bool)
    assert isinstance(responder.describe(), str)
    responder.close()
