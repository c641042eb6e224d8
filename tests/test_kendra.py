"""Amazon Kendra as the retriever, through boto3 against the loopback Kendra: the Retrieve request carries the
language filter (set, or detected from the question) and the tenant filter; results become cited sources."""

from __future__ import annotations

import json

import pytest

from ragline.compose import Ragline
from ragline.providers.aws.kendra import KendraRetriever, detect_language
from ragline.query.engine import Query
from ragline.settings import Settings
from ragline.testing.aws import FakeAWSModels

pytestmark = pytest.mark.usefixtures("aws_env")
INDEX = "0f3e1c2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"  # botocore checks the shape: 36 characters
PASSAGES = [
    {"id": "lex-en", "title": "What is Amazon Lex?", "language": "en", "tenant": "acme", "product": "lex",
     "uri": "https://docs.aws.amazon.com/lex/what-is",
     "text": "Amazon Lex is a service for building conversational interfaces into any application using voice and "
             "text."},
    {"id": "lex-de", "title": "Was ist Amazon Lex?", "language": "de", "tenant": "acme", "product": "lex",
     "uri": "https://docs.aws.amazon.com/de/lex/",
     "text": "Amazon Lex ist ein Dienst zum Erstellen von Konversationsschnittstellen mit Sprache und Text."},
]


def test_language_detection_falls_back_on_weak_guesses():
    assert detect_language("Wie erstelle ich einen Bot mit Amazon Lex und welche Sprachen werden unterstützt?",
                           "en") == "de"
    assert detect_language("How do I create a bot with Amazon Lex and which languages are supported?", "de") == "en"
    assert detect_language("Lex?", "fr") == "fr"


def test_retrieve_filters_by_the_detected_language_and_the_tenant():
    with FakeAWSModels(passages=PASSAGES) as aws:
        kendra = KendraRetriever(INDEX, tenant_attribute="tenant", endpoint_url=aws.endpoint_url)
        hits = kendra.retrieve("Was ist Amazon Lex und wofür wird der Dienst verwendet?", k=3,
                               filters={"tenant": "ignored", "product": "lex"}, tenant="acme")
        request = aws.requests[0]
    assert request["target"] == "AWSKendraFrontendService.Retrieve"
    assert request["body"]["IndexId"] == INDEX and request["body"]["PageSize"] == 3
    assert request["body"]["AttributeFilter"] == {"AndAllFilters": [
        {"EqualsTo": {"Key": "_language_code", "Value": {"StringValue": "de"}}},
        {"EqualsTo": {"Key": "tenant", "Value": {"StringValue": "acme"}}},
        {"EqualsTo": {"Key": "product", "Value": {"StringValue": "lex"}}},
    ]}
    assert [h.chunk.doc_id for h in hits] == ["https://docs.aws.amazon.com/de/lex/"]
    assert hits[0].chunk.language == "de" and hits[0].found_by == ("kendra",) and hits[0].chunk.tenant == "acme"


def test_a_request_botocore_refuses_is_not_retried_as_an_outage():
    """An invalid request (botocore's ParamValidationError: here an index id of the wrong shape) fails at once with
    the reason; it used to be taken for an outage and retried with backoff."""
    from ragline.errors import ModelUnavailableError, RaglineError
    from ragline.resilience import RetryPolicy

    with FakeAWSModels(passages=PASSAGES) as aws:
        kendra = KendraRetriever("too-short", endpoint_url=aws.endpoint_url,
                                 policy=RetryPolicy(max_attempts=5, base_delay=1.0))
        with pytest.raises(RaglineError, match=r"(?s)Retrieve: invalid request: .*IndexId") as caught:
            kendra.retrieve("What is Amazon Lex?", k=3, filters={}, tenant="acme")
        assert not isinstance(caught.value, ModelUnavailableError) and aws.requests == []


def test_the_engine_answers_from_kendra_with_citations(tmp_path):
    with FakeAWSModels(passages=PASSAGES) as aws:
        endpoints = json.dumps({"bedrock-runtime": aws.endpoint_url, "kendra": aws.endpoint_url})
        rag = Ragline(Settings(
            home=tmp_path, retriever="kendra", kendra_index_id=INDEX, kendra_language="en",
            chat_model="bedrock", embedder="titan", aws_endpoints=json.loads(endpoints), cache=False,
        ))
        answer = rag.engine.ask(Query("What is Amazon Lex?", k=2))
        body = aws.requests[0]["body"]
    assert body["AttributeFilter"] == {"EqualsTo": {"Key": "_language_code", "Value": {"StringValue": "en"}}}
    assert [s.doc_id for s in answer.sources] == ["https://docs.aws.amazon.com/lex/what-is"]
    assert answer.citations and answer.citations[0].doc_id == "https://docs.aws.amazon.com/lex/what-is"
    assert answer.text.startswith("Amazon Lex is a service")
    assert not (tmp_path / "index").exists()  # the LanceDB store was never opened


@pytest.mark.parametrize("model", ["ragline", "ragline-extractive"])
def test_every_model_name_answers_from_kendra_never_the_local_store(tmp_path, model):
    """The drift bug: ``ragline-extractive`` used to search the local store even when Kendra was configured."""
    import httpx
    import openai

    from ragline.interfaces.http import create_app
    from ragline.testing.fakes import FakeEmbedder

    from conftest import serve

    with FakeAWSModels(passages=PASSAGES) as aws:
        rag = Ragline(Settings(home=tmp_path, retriever="kendra", kendra_index_id=INDEX, kendra_language="en",
                               chat_model="bedrock", aws_endpoint_url=aws.endpoint_url, cache=False),
                      embedder=FakeEmbedder())
        url, stop = serve(create_app(rag))
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
            reply = client.chat.completions.create(model=model, messages=[
                {"role": "user", "content": "What is Amazon Lex?"}])
            extra = reply.model_extra or {}
            queried = httpx.post(f"{url}/v1/query", json={"question": "What is Amazon Lex?"}, timeout=30).json()
        finally:
            stop()
        kendra_calls = [r for r in aws.requests if r.get("target") == "AWSKendraFrontendService.Retrieve"]
    assert [s["doc_id"] for s in extra["sources"]] == ["https://docs.aws.amazon.com/lex/what-is"]
    assert "[1]" in (reply.choices[0].message.content or "")
    assert queried["sources"][0]["doc_id"] == "https://docs.aws.amazon.com/lex/what-is"
    assert len(kendra_calls) == 2
    assert not (tmp_path / "index").exists()  # the local store was never opened
