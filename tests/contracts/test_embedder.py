"""The Embedder contract, run over every implementation: MiniLM (the real ONNX model), Titan v2 through boto3
against the loopback Bedrock, and the bag-of-words fake."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ragline.providers.aws.bedrock import TitanEmbedder
from ragline.seams import Embedder
from ragline.testing.aws import FakeAWSModels
from ragline.testing.fakes import FakeEmbedder


@pytest.fixture(params=["minilm", "titan", "fake"])
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    if request.param == "minilm":
        yield request.getfixturevalue("minilm")
    elif request.param == "titan":
        request.getfixturevalue("aws_env")
        with FakeAWSModels() as aws:
            yield TitanEmbedder(dimension=256, region="us-east-1", endpoint_url=aws.endpoint_url)
    else:
        yield FakeEmbedder()


def test_vectors_are_normalised_one_per_text_and_repeatable(embedder: Embedder) -> None:
    texts = ["Amazon Lex builds chatbots.", "Cats sleep most of the day.", "Amazon Lex builds chatbots."]
    vectors = embedder.embed_batch(texts)
    assert vectors.shape == (3, embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)
    assert embedder.embed_batch([]).shape == (0, embedder.dimension)


def test_tokens_are_counted_and_the_tokenizer_if_any_agrees(embedder: Embedder) -> None:
    n = embedder.count_tokens("Amazon Lex builds chatbots.")
    assert 3 <= n <= 12 and embedder.count_tokens("") == 0
    if embedder.tokenizer is not None:
        assert len(embedder.tokenizer.encode("Amazon Lex builds chatbots.", add_special_tokens=False).ids) == n
    assert isinstance(embedder.name, str) and embedder.name
