"""The Reranker contract over the HTTP reranker in both request shapes (Cohere-style and Text Embeddings
Inference), against the loopback ``/rerank`` endpoint that answers 422 to a body of the wrong shape; Bedrock Rerank
against the loopback Bedrock; a cross-encoder ONNX file run by onnxruntime; and the engine with a reranker: it
retrieves ``rerank_depth`` passages and answers from the reranked ``k``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragline.errors import ModelError
from ragline.providers.rerank import HTTPReranker
from ragline.resilience import RetryPolicy
from ragline.seams import Reranker
from ragline.testing.rerank import FakeReranker
from ragline.types import Chunk, Hit, Query

HITS = [Hit(Chunk(f"c{n}", f"doc{n}.md", 0, text), 0.5) for n, text in enumerate([
    "Invoices are issued monthly.", "Cats sleep most of the day.", "Passports must be valid for six months.",
    "Amazon Lex builds chatbots with voice and text."])]


@pytest.fixture(params=["cohere", "tei", "bedrock", "onnx"])
def reranker(request: pytest.FixtureRequest) -> Iterator[Reranker]:
    if request.param == "onnx":  # a cross-encoder file the user points to (a tiny lexical one, built here)
        yield onnx_reranker(request.getfixturevalue("tmp_path"))
        return
    if request.param == "bedrock":  # the loopback Bedrock, through boto3 (botocore validates the request)
        from ragline.providers.aws.rerank import BedrockReranker
        from ragline.testing.aws import FakeAWSModels

        request.getfixturevalue("aws_env")
        with FakeAWSModels() as aws:
            yield BedrockReranker("amazon.rerank-v1:0", region="us-east-1", endpoint_url=aws.endpoint_url,
                                  policy=RetryPolicy(3, 0.01, 0.02))
        return
    with FakeReranker(request.param) as fake:
        yield HTTPReranker(fake.url, model="rerank-v1", api=request.param, policy=RetryPolicy(3, 0.01, 0.02))


def test_the_best_k_first_with_their_scores(reranker: Reranker) -> None:
    ranked = reranker.rerank("how long must passports be valid", HITS, k=2)
    assert len(ranked) == 2 and ranked[0].chunk.id == "c2" and ranked[0].score >= ranked[1].score
    assert ranked[0].found_by[-1] == "rerank" and isinstance(reranker.name, str)
    assert reranker.rerank("anything", [], k=3) == []


def test_throttling_is_retried_and_a_bad_request_is_not() -> None:
    with FakeReranker("cohere", ["429", "ok"]) as fake:
        ranked = HTTPReranker(fake.url, policy=RetryPolicy(3, 0.01, 0.02)).rerank("cats", HITS, k=1)
        assert ranked[0].chunk.id == "c1" and len(fake.requests) == 2
    with FakeReranker("tei") as fake, pytest.raises(ModelError, match="422"):
        HTTPReranker(fake.url, api="cohere").rerank("cats", HITS, k=1)  # the wrong shape for this server


def test_bedrock_rerank_sends_the_documented_request(aws_env) -> None:
    from ragline.errors import ConfigError
    from ragline.providers.aws.rerank import BedrockReranker
    from ragline.testing.aws import FakeAWSModels

    with FakeAWSModels() as aws:
        reranker = BedrockReranker("cohere.rerank-v3-5:0", region="us-west-2", endpoint_url=aws.endpoint_url)
        assert reranker.rerank("how long must passports be valid", HITS, k=2)[0].chunk.id == "c2"
        body = aws.requests[-1]["body"]
    assert aws.requests[-1]["path"] == "/rerank" and len(body["sources"]) == 4
    config = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    assert config == {"numberOfResults": 2, "modelConfiguration": {
        "modelArn": "arn:aws:bedrock:us-west-2::foundation-model/cohere.rerank-v3-5:0"}}
    with pytest.raises(ConfigError, match="RAGLINE_RERANK_MODEL"):
        BedrockReranker("", region="us-east-1")


def test_the_engine_answers_from_the_reranked_passages(make_app, tmp_path) -> None:
    from ragline.ingest.pipeline import expand_paths, source_items

    from conftest import write

    for n, hit in enumerate(HITS):
        write(tmp_path / "kb", f"doc{n}.md", f"# Doc {n}\n\n{hit.chunk.text}")
    with FakeReranker("cohere") as fake:
        app = make_app(reranker="http", rerank_url=fake.url, rerank_depth=4, k=1)
        app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
        answer = app.engine.ask(Query("How long must passports be valid?", k=1, use_cache=False))
        asked = fake.requests[-1]["body"]
    assert len(asked["documents"]) == 4 and asked["top_n"] == 1  # rerank_depth retrieved, k kept
    assert answer.sources[0].doc_id.endswith("doc2.md") and "rerank" in answer.timings


def onnx_reranker(folder, classes=1):
    """The ONNX reranker over a tiny lexical cross-encoder with MiniLM's tokenizer.json beside it."""
    import shutil
    from importlib import resources

    from ragline.providers.local.cross_encoder import CrossEncoderReranker
    from ragline.testing.cross_encoder import lexical_cross_encoder

    model = lexical_cross_encoder(folder / "cross-encoder" / "model.onnx", classes)
    with resources.as_file(resources.files("ragline").joinpath("assets/minilm/tokenizer.json")) as vocab:
        shutil.copy(vocab, model.with_name("tokenizer.json"))
    return CrossEncoderReranker(str(model), batch_size=3)


def test_an_onnx_cross_encoder_with_two_classes_and_what_is_refused(tmp_path) -> None:
    from ragline.errors import ConfigError
    from ragline.providers.local.cross_encoder import CrossEncoderReranker

    two = onnx_reranker(tmp_path / "two", classes=2)  # [not relevant, relevant] logits: the second counts
    ranked = two.rerank("how long must passports be valid", HITS, k=4)
    assert ranked[0].chunk.id == "c2" and ranked[0].score > ranked[-1].score
    assert two.name == "onnx:model.onnx"
    with pytest.raises(ConfigError, match="is not a file"):
        CrossEncoderReranker(str(tmp_path / "missing.onnx"))
    bogus = tmp_path / "bogus" / "model.onnx"
    bogus.parent.mkdir()
    bogus.write_bytes(b"not a model")
    (bogus.parent / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an ONNX model"):
        CrossEncoderReranker(str(bogus))
