"""The ChatModel contract, run over every implementation: llama.cpp with the shipped GGUF, the OpenAI-compatible
client against a loopback server, Bedrock (ConverseStream and InvokeModel) through boto3 against the loopback
Bedrock, the resilient chain around them, and the echo fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragline.providers.aws.bedrock import BedrockChatModel
from ragline.providers.local.llama import LlamaChatModel
from ragline.providers.openai import OpenAIChatModel
from ragline.resilience import ResilientChatModel, RetryPolicy
from ragline.seams import ChatModel
from ragline.testing.aws import FakeAWSModels
from ragline.testing.fakes import EchoChatModel, FaultyOpenAIServer
from ragline.types import Attempt, Message, Token, UsageEvent

PROMPT = [Message("system", "Answer from the sources; cite them as [n]."),
          Message("user", "Sources:\n\n[1] lex.md\nAmazon Lex builds chatbots. It uses ASR.\n\nQuestion: What is Lex?")]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaChatModel]:
    model = LlamaChatModel()
    yield model
    model.close()


@pytest.fixture(params=["llama", "openai", "bedrock-converse", "bedrock-invoke", "resilient", "echo"])
def model(request: pytest.FixtureRequest) -> Iterator[ChatModel]:
    kind = request.param
    if kind == "llama":
        yield request.getfixturevalue("llama")
    elif kind in ("openai", "resilient"):
        with FaultyOpenAIServer() as server:
            openai = OpenAIChatModel(base_url=server.base_url, model="loopback")
            yield openai if kind == "openai" else ResilientChatModel([openai], RetryPolicy(2, 0.01, 0.02))
            openai.close()
    elif kind.startswith("bedrock"):
        request.getfixturevalue("aws_env")
        with FakeAWSModels() as aws:
            yield BedrockChatModel(HAIKU, region="us-east-1", api=kind.split("-")[1], endpoint_url=aws.endpoint_url)
    else:
        yield EchoChatModel()


def test_streams_tokens_then_usage(model: ChatModel) -> None:
    events = list(model.stream(PROMPT, max_tokens=16))
    tokens = [e.text for e in events if isinstance(e, Token)]
    usage = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert "".join(tokens).strip()
    assert len(usage) == 1 and 0 < usage[0].completion_tokens <= 16
    assert all(isinstance(e, Token | UsageEvent | Attempt) for e in events)
    last_token = max(i for i, e in enumerate(events) if isinstance(e, Token))
    assert events.index(next(e for e in events if isinstance(e, UsageEvent))) > last_token


def test_describes_itself_and_closing_a_stream_early_stops_it(model: ChatModel) -> None:
    assert isinstance(model.name, str) and model.name and model.context_tokens >= 1024
    assert isinstance(model.accepts_images, bool)
    assert isinstance(model.describe(), str)
    stream = model.stream(PROMPT, max_tokens=16)
    first = next(e for e in stream if isinstance(e, Token))
    stream.close()  # a caller that left: no error, nothing more
    assert first.text
    model.close()
    model.close()  # closing twice is harmless, and the model still answers afterwards
    assert any(isinstance(e, Token) for e in model.stream(PROMPT, max_tokens=4))
