"""Bedrock chat and Titan embeddings through the real boto3 client against a loopback Bedrock (event streams
decoded by botocore), with the request bodies checked against the documented shapes."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from ragline.compose import Ragline
from ragline.errors import ConfigError, ModelError
from ragline.providers.aws.bedrock import BedrockChatModel, TitanEmbedder
from ragline.resilience import ResilientChatModel, RetryPolicy, StreamInterruptedError
from ragline.settings import Settings
from ragline.testing.aws import FakeAWSModels
from ragline.types import Attempt, Deadline, Image, Message, Token, UsageEvent

pytestmark = pytest.mark.usefixtures("aws_env")
PROMPT = [
    Message("system", "Answer from the sources and cite them as [n]."),
    Message("user", "Sources:\n[1] what-is.md\nAmazon Lex builds chatbots. It uses ASR.\n\nQuestion: What is Lex?"),
]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def run(model, messages=PROMPT, **kw):
    events = list(model.stream(messages, max_tokens=64, **kw))
    return ("".join(e.text for e in events if isinstance(e, Token)), [e for e in events if isinstance(e, UsageEvent)],
            [e for e in events if isinstance(e, Attempt)])


def test_converse_stream_is_decoded_and_the_request_has_the_documented_shape():
    with FakeAWSModels() as aws:
        model = BedrockChatModel("anthropic.claude-3-haiku-20240307-v1:0", region="us-east-1",
                                 endpoint_url=aws.endpoint_url)
        text, usage, _ = run(model)
        request = aws.chat_requests()[0]
    assert text == "Amazon Lex builds chatbots [1]."
    assert usage[0].usage.prompt_tokens == 120 and usage[0].usage.completion_tokens == 5
    assert request["path"] == "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream"
    assert request["body"]["system"] == [{"text": PROMPT[0].content}]
    assert request["body"]["messages"] == [{"role": "user", "content": [{"text": PROMPT[1].content}]}]
    assert request["body"]["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.0}


def test_invoke_with_response_stream_sends_the_anthropic_messages_body():
    with FakeAWSModels() as aws:
        model = BedrockChatModel("anthropic.claude-3-haiku-20240307-v1:0", api="invoke", endpoint_url=aws.endpoint_url)
        text, usage, _ = run(model, [*PROMPT[:1], Message("user", PROMPT[1].content, (Image(PNG, "image/png"),))])
        body = aws.chat_requests()[0]["body"]
    assert text == "Amazon Lex builds chatbots [1]."  # the fake answers 400 ValidationException on a wrong body
    assert usage[0].usage.prompt_tokens == 120 and usage[0].usage.completion_tokens == 5
    assert body["anthropic_version"] == "bedrock-2023-05-31" and body["system"] == PROMPT[0].content
    image, text_block = body["messages"][0]["content"]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": base64.b64encode(PNG).decode()}}
    assert text_block == {"type": "text", "text": PROMPT[1].content}


def test_images_go_to_models_that_take_them_and_are_refused_clearly_by_others():
    with FakeAWSModels() as aws:
        claude = BedrockChatModel("anthropic.claude-3-haiku-20240307-v1:0", endpoint_url=aws.endpoint_url)
        run(claude, [Message("user", PROMPT[1].content, (Image(PNG, "image/png"),))])
        blocks = aws.chat_requests()[0]["body"]["messages"][0]["content"]
        assert blocks[0] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
        titan_text = BedrockChatModel("amazon.titan-text-express-v1", endpoint_url=aws.endpoint_url)
        with pytest.raises(ConfigError, match="does not take images"):
            run(titan_text, [Message("user", "what is this?", (Image(PNG, "image/png"),))])
    with pytest.raises(ConfigError, match="not an Anthropic model"):
        BedrockChatModel("amazon.nova-pro-v1:0", api="invoke")


def test_throttling_is_retried_with_backoff_and_access_denied_is_not():
    with FakeAWSModels(["throttle", "throttle", "ok"]) as aws:
        model = ResilientChatModel([BedrockChatModel("m.claude-3", endpoint_url=aws.endpoint_url)],
                                   RetryPolicy(3, 0.01, 0.02))
        text, _, attempts = run(model)
    assert text.endswith("[1].")
    assert ["ThrottlingException (throttled" in a.outcome for a in attempts[:2]] == [True, True]
    assert attempts[-1].outcome == "ok"
    with FakeAWSModels(["denied"]) as aws:
        model = ResilientChatModel([BedrockChatModel("m.claude-3", endpoint_url=aws.endpoint_url)],
                                   RetryPolicy(3, 0.01, 0.02))
        with pytest.raises(ModelError, match="access denied"):
            run(model)
        assert len(aws.chat_requests()) == 1


def test_throttling_inside_the_event_stream_keeps_the_text_so_far():
    with FakeAWSModels(["midstream:2"]) as aws:
        model = ResilientChatModel([BedrockChatModel("m.claude-3", endpoint_url=aws.endpoint_url)],
                                   RetryPolicy(3, 0.01, 0.02))
        seen = []
        with pytest.raises(StreamInterruptedError, match="throttlingException"):
            for event in model.stream(PROMPT, max_tokens=64):
                if isinstance(event, Token):
                    seen.append(event.text)
        assert seen == ["Amazon", " Lex"]
        assert len(aws.chat_requests()) == 1  # never restarted after text reached the caller


def test_regions_fail_over_in_order(tmp_path):
    with FakeAWSModels(["throttle", "throttle", "ok"]) as aws:
        settings = Settings(home=tmp_path, chat_model="bedrock", bedrock_regions=["us-east-1", "eu-west-1"],
                            aws_endpoint_url=aws.endpoint_url, retry_attempts=2, retry_base_delay=0.01)
        model = Ragline(settings).chat_model("bedrock")
        text, _, attempts = run(model)
        regions = [re.search(r"Credential=\w+/\d+/([\w-]+)/bedrock/", r["auth"]).group(1) for r in aws.requests]
    assert text.endswith("[1].")
    assert regions == ["us-east-1", "us-east-1", "eu-west-1"]  # signed for each region in turn
    assert [a.model for a in attempts] == [
        "bedrock:anthropic.claude-3-haiku-20240307-v1:0@us-east-1"] * 2 + [
        "bedrock:anthropic.claude-3-haiku-20240307-v1:0@eu-west-1"]


def test_the_deadline_stops_a_slow_stream():
    with FakeAWSModels(["slow:0.3"]) as aws:
        model = BedrockChatModel("m.claude-3", endpoint_url=aws.endpoint_url)
        model._client(Deadline.after(1.0))  # built once per process and read timeout; not what is measured here
        text, _, _ = run(model, deadline=Deadline.after(1.0))
    assert 0 < len(text.split()) < 5  # the whole answer (5 words, 2.1 s at this pace) never arrives


def test_titan_v2_embeddings_keep_order_and_dimension():
    with FakeAWSModels() as aws:
        titan = TitanEmbedder(dimension=256, endpoint_url=aws.endpoint_url)
        vectors = titan.embed_batch(["amazon lex bots", "lambda functions", "amazon lex bots"])
        bodies = [r["body"] for r in aws.requests]
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sorted(b["inputText"] for b in bodies) == sorted(["amazon lex bots", "lambda functions", "amazon lex bots"])
    assert all(b["dimensions"] == 256 and b["normalize"] is True for b in bodies)
    assert titan.name == "amazon.titan-embed-text-v2:0/256" and titan.count_tokens("Amazon Lex") == 2


def test_a_question_with_an_image_reaches_the_model_with_the_sources(make_app, tmp_path):
    from ragline.query.engine import Query

    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "lex.md").write_text("# Lex\n\nAmazon Lex builds chatbots. It uses ASR.\n")
    with FakeAWSModels() as aws:
        app = make_app(chat_model="bedrock", aws_endpoints={"bedrock-runtime": aws.endpoint_url})
        from ragline.ingest.pipeline import source_items

        app.ingestor.run(list(source_items([tmp_path / "kb" / "lex.md"])))
        answer = app.engine.ask(Query("What does this screenshot show about Lex?", images=[Image(PNG, "image/png")]))
        blocks = aws.chat_requests()[0]["body"]["messages"][-1]["content"]
    assert answer.citations and answer.cache == "off"  # questions with pictures are never cached
    assert blocks[0]["image"]["format"] == "png" and "[1]" in blocks[1]["text"]
