"""Bedrock Knowledge Bases through the real boto3 client against the loopback Bedrock Agent Runtime: as a retriever
(ragline's prompt, model, citations and cache apply) and as a one-call answerer (RetrieveAndGenerateStream, its
citations become ragline's sources and markers). Request bodies are checked by botocore and by the fake against
the documented shapes (filters, model ARN)."""

from __future__ import annotations

import httpx
import pytest

from ragline.compose import Ragline
from ragline.errors import ConfigError, ModelError
from ragline.interfaces.http import create_app
from ragline.providers.aws.clients import model_arn
from ragline.providers.aws.knowledge_base import insert_marks, metadata_filter
from ragline.query.engine import Query
from ragline.settings import Settings
from ragline.testing.aws import FakeAWSModels

from conftest import serve, sse_post

pytestmark = pytest.mark.usefixtures("aws_env")
KB = "KBID123456"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PASSAGES = [
    {"id": "lex", "title": "Lex", "language": "en", "tenant": "acme", "uri": "s3://docs/acme/lex/what-is.md",
     "text": "Amazon Lex is a service for building conversational interfaces with voice and text. It uses ASR."},
    {"id": "polly", "title": "Polly", "language": "en", "tenant": "acme", "uri": "s3://docs/acme/polly/what-is.md",
     "text": "Amazon Polly turns text into lifelike speech. It supports many voices."},
    {"id": "other", "title": "Secret", "language": "en", "tenant": "globex", "uri": "s3://docs/globex/plan.md",
     "text": "Globex plans a conversational interfaces launch with voice and text in May."},
]


def rag(tmp_path, aws, **kw) -> Ragline:
    settings = {"home": tmp_path / "home", "aws_region": "us-east-1", "aws_endpoint_url": aws.endpoint_url,
                "knowledge_base_id": KB, "knowledge_base_tenant_attribute": "tenant", "tenant": "acme",
                "retry_base_delay": 0.0, "embedder": "fake", **kw}
    return Ragline(Settings(**settings))


def kb_requests(aws):
    return [r for r in aws.requests if r["path"].startswith(("/knowledgebases/", "/retrieveAndGenerate"))]


def test_filters_follow_the_documented_retrieval_filter():
    assert metadata_filter({}, "acme", None) is None
    assert metadata_filter({"tenant": "other"}, "acme", "tenant") == {"equals": {"key": "tenant", "value": "acme"}}
    assert metadata_filter({"source": "s3://docs/lex/", "team": "ops"}, "acme", "tenant") == {"andAll": [
        {"equals": {"key": "tenant", "value": "acme"}},
        {"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://docs/lex/"}},
        {"equals": {"key": "team", "value": "ops"}},
    ]}
    assert model_arn(HAIKU, "eu-west-1", "test") == f"arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}"
    profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    assert model_arn(profile, None, "test") == profile


def test_retriever_feeds_ragline_prompt_model_citations_and_cache(tmp_path):
    with FakeAWSModels(passages=PASSAGES) as aws:
        app = rag(tmp_path, aws, retriever="knowledge-base", knowledge_base_search="hybrid", chat_model="bedrock")
        answer = app.engine.ask(Query("What is Amazon Lex used for?", k=2, filters={"source": "s3://docs/acme/"}))
        again = app.engine.ask(Query("What is Amazon Lex used for?", k=2, filters={"source": "s3://docs/acme/"}))
        retrieve = kb_requests(aws)
    assert answer.sources[0].doc_id == "s3://docs/acme/lex/what-is.md" and answer.sources[0].title == "what-is.md"
    assert answer.sources[0].score > answer.sources[1].score > 0
    assert answer.text == "Amazon Lex is a service for building conversational interfaces with voice and text [1]."
    assert answer.citations[0].doc_id == "s3://docs/acme/lex/what-is.md"
    assert again.cache == "hit" and len(retrieve) == 1  # the second answer touched neither Bedrock API
    body = retrieve[0]["body"]
    assert retrieve[0]["path"] == f"/knowledgebases/{KB}/retrieve"
    assert body["retrievalQuery"] == {"text": "What is Amazon Lex used for?"}
    assert body["retrievalConfiguration"]["vectorSearchConfiguration"] == {
        "numberOfResults": 2, "overrideSearchType": "HYBRID", "filter": {"andAll": [
            {"equals": {"key": "tenant", "value": "acme"}},
            {"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://docs/acme/"}}]}}


def test_another_tenant_never_sees_the_passages(tmp_path):
    with FakeAWSModels(passages=PASSAGES) as aws:
        app = rag(tmp_path, aws, retriever="knowledge-base", chat_model="bedrock")
        hits = app.for_tenant("globex").engine.retrieve("conversational interfaces voice text", k=5)
    assert [h.chunk.doc_id for h in hits] == ["s3://docs/globex/plan.md"]


@pytest.mark.parametrize("stream", [True, False])
def test_answerer_streams_and_its_citations_become_sources_and_markers(tmp_path, stream):
    with FakeAWSModels(passages=PASSAGES) as aws:
        app = rag(tmp_path, aws, chat_model="knowledge-base", knowledge_base_stream=stream, cache=False)
        events = list(app.engine.stream(Query("What is Amazon Polly for lifelike speech?", k=3)))
        request = kb_requests(aws)[0]
    kinds = [type(e).__name__ for e in events]
    # the answer is read whole first: its citations decide the sources, which the contract puts first
    assert [k for k in kinds if k != "Verdict"] == ["Sources", "Token", "UsageEvent", "Done"]
    assert kinds.index("Verdict") > kinds.index("Token")  # each sentence of its answer checked too
    answer = events[-1].answer
    assert answer.text == "Amazon Polly turns text into lifelike speech [1]."
    assert answer.sources[0].doc_id == "s3://docs/acme/polly/what-is.md"
    assert answer.sources[0].excerpt.startswith("Amazon Polly turns text")
    assert [(c.number, c.doc_id) for c in answer.citations] == [(1, "s3://docs/acme/polly/what-is.md")]
    assert answer.model == f"knowledge-base:{KB}:{HAIKU}"
    assert request["path"] == ("/retrieveAndGenerateStream" if stream else "/retrieveAndGenerate")
    config = request["body"]["retrieveAndGenerateConfiguration"]
    assert config["knowledgeBaseConfiguration"]["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    assert config["knowledgeBaseConfiguration"]["retrievalConfiguration"]["vectorSearchConfiguration"] == {
        "numberOfResults": 3, "filter": {"equals": {"key": "tenant", "value": "acme"}}}


def test_answerer_retries_throttling_and_keeps_a_partial_answer(tmp_path):
    with FakeAWSModels(passages=PASSAGES, script=["throttle", "ok"]) as aws:
        app = rag(tmp_path, aws, chat_model="knowledge-base", cache=False)
        answer = app.engine.ask(Query("What is Amazon Polly for lifelike speech?"))
        assert answer.text.endswith("[1].") and not answer.partial
        aws.script = ["midstream:3"]
        partial = app.engine.ask(Query("What is Amazon Polly for lifelike speech?"))
        aws.script = ["denied"]
        with pytest.raises(ModelError, match="access denied"):
            app.engine.ask(Query("What is Amazon Polly for lifelike speech?"))
    assert len(kb_requests(aws)) == 4
    assert partial.partial and "throttl" in partial.partial_reason and partial.text == "Amazon Polly turns"


def test_nothing_found_says_so_without_sources(tmp_path):
    with FakeAWSModels(passages=PASSAGES) as aws:
        answer = rag(tmp_path, aws, chat_model="knowledge-base", cache=False).engine.ask(Query("zebra migration"))
    assert answer.text == "Sorry, I am unable to assist you with this request."
    assert answer.sources == [] and answer.citations == []


def test_the_http_api_streams_the_knowledge_base_answer(tmp_path):
    with FakeAWSModels(passages=PASSAGES) as aws:
        url, stop = serve(create_app(rag(tmp_path, aws, chat_model="knowledge-base")))
        try:
            events = sse_post(f"{url}/v1/query", {"question": "What is Amazon Lex?", "stream": True})
            png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
            images = httpx.post(f"{url}/v1/query", json={"question": "What is this?", "images": [
                {"media_type": "image/png", "data": png}]}, timeout=30)
        finally:
            stop()
    kinds = [k for k, _ in events]
    assert [k for k in kinds if k != "verdict"] == ["sources", "token", "usage", "done"] and "verdict" in kinds
    assert events[-1][1]["answer"]["answer"].endswith("[1].")
    assert events[0][1]["sources"][0]["doc_id"].startswith("s3://")
    assert images.status_code == 422 and "does not take images" in images.json()["error"]["message"]


def test_marks_go_before_the_closing_punctuation():
    assert insert_marks("Lex builds bots. Polly speaks.", [(16, (1,)), (30, (2, 1))]) == (
        "Lex builds bots [1]. Polly speaks [2, 1].")


def test_a_missing_knowledge_base_id_is_a_clear_error(tmp_path):
    with FakeAWSModels() as aws, pytest.raises(ConfigError, match="RAGLINE_KNOWLEDGE_BASE_ID"):
        _ = rag(tmp_path, aws, knowledge_base_id=None, chat_model="knowledge-base").responder

