"""The Verifier contract over the local verifier (real MiniLM) and the Bedrock guardrail (the loopback Bedrock,
through boto3): a sentence its source says is supported; one its source does not say is unsupported, with a
reason that names the source; and the engine checks every sentence of a real answer with either of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragline.providers.aws.guardrail import GuardrailVerifier
from ragline.providers.local.verifier import LocalVerifier
from ragline.seams import Verifier
from ragline.testing.aws import FakeAWSModels
from ragline.types import Source

SOURCE = Source(2, "lex/what-is.md", "What Is Amazon Lex?", "", None, 0.0,
                "Amazon Lex is an AWS service for building conversational interfaces for applications using voice "
                "and text. It provides automatic speech recognition and natural language understanding.")
OTHER = Source(3, "notes.md", "Notes", "", None, 0.0, "Invoices are issued monthly by the finance team.")


@pytest.fixture(params=["local", "guardrail"])
def verifier(request: pytest.FixtureRequest, minilm) -> Iterator[Verifier]:
    if request.param == "local":
        yield LocalVerifier(minilm)
        return
    request.getfixturevalue("aws_env")
    with FakeAWSModels() as fake:
        yield GuardrailVerifier("gr-1", "DRAFT", region="us-east-1", endpoint_url=fake.endpoint_url)


def test_what_the_source_says_is_supported(verifier: Verifier) -> None:
    claim = "Amazon Lex is an AWS service for building conversational interfaces using voice and text."
    assert verifier.check("What is Amazon Lex?", claim, [SOURCE]) == ("supported", "")
    assert isinstance(verifier.name, str) and isinstance(verifier.describe(), str)


def test_what_the_source_does_not_say_is_unsupported_with_the_reason(verifier: Verifier) -> None:
    claim = "Amazon Lex is an AWS service for building conversational interfaces using voice and text."
    verdict, reason = verifier.check("What is Amazon Lex?", claim, [OTHER])
    assert verdict == "unsupported" and "[3]" in reason


def test_the_engine_checks_every_sentence_with_it(verifier: Verifier, make_app, tmp_path) -> None:
    from ragline.ingest.pipeline import expand_paths, source_items
    from ragline.types import Query

    from conftest import write

    write(tmp_path / "kb", "lex.md", "# What Is Amazon Lex?\n\n" + SOURCE.excerpt + "\n")
    app = make_app(parts={"verifier": verifier})
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    answer = app.engine.ask(Query("What is Amazon Lex?"))
    claims = [v for v in answer.sentences if v.verdict != "remark"]
    assert claims and all(v.verdict == "supported" for v in claims) and answer.supported == 1.0
