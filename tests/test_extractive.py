"""The extractive answerer (the default, offline): Markdown-aware units, and the answer shaped by the question:
a definition, a number, the steps, a yes or a no; each sentence cited, none repeated. Real MiniLM."""

from __future__ import annotations

import pytest

from ragline.providers.local.extractive import ExtractiveAnswerer, question_kind
from ragline.providers.local.sentences import units
from ragline.query.citations import check_citations
from ragline.types import Source

WHAT_IS = (
    "# What Is Amazon Lex?<a name=\"what-is\"></a>\n\n"
    "Amazon Lex is an AWS service for building conversational interfaces for applications using voice and text\\. "
    "With Amazon Lex, the same conversational engine that powers Amazon Alexa is now available to any developer\\.\n\n"
    "For more information, see [Pricing](https://aws.amazon.com/lex/pricing/)\\.\n"
)
STEPS = (
    "## To delete a bot<a name=\"delete\"></a>\n\n"
    "1. Sign in to the AWS Management Console and open the Amazon Lex console\\.\n"
    "1. From the list of bots, choose the bot that you want to delete\\.\n"
    "1. Choose **Actions**, and then choose **Delete**\\.\n"
    "1. Confirm that you want to delete the bot\\.\n\n"
    "```\naws lex-models delete-bot --name OrderFlowers\n```\n"
)
LIMITS = (
    "| Resource | Quota |\n| --- | --- |\n| Bots per account | 250 |\n| Intents per bot | 250 |\n\n"
    "The session timeout of a bot is between 1 and 1,440 minutes\\. By default it is 5 minutes\\.\n"
)
CHILD = ("If you set childDirected to true, Amazon Lex does not store any user utterances\\. "
         "Amazon Lex stores utterances for 15 days only when childDirected is false\\.")


def sources(*texts: str) -> list[Source]:
    return [Source(n, f"doc{n}.md", f"Doc {n}", "", None, 1.0 / n, text) for n, text in enumerate(texts, start=1)]


@pytest.fixture(scope="module")
def answerer(minilm) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(minilm)


def test_markdown_becomes_clean_units() -> None:
    found = units(WHAT_IS + STEPS + LIMITS)
    texts = [u.text for u in found]
    assert texts[0] == ("Amazon Lex is an AWS service for building conversational interfaces for applications "
                        "using voice and text.")
    assert "For more information, see Pricing." in texts  # the link's text, not its URL
    assert [u.kind for u in found].count("step") == 4 and not any("delete-bot" in t for t in texts)  # no code
    assert "Bots per account: 250" in texts and not any("What Is" in t or "<a" in t or "\\" in t for t in texts)


@pytest.mark.parametrize(("question", "kind"), [
    ("What is Amazon Lex?", "definition"), ("How do I delete a bot?", "how_to"),
    ("How many bots can I have per account?", "quantity"), ("Does Amazon Lex store utterances?", "yes_no"),
    ("Which languages does Lex support?", "other"),
])
def test_question_kinds(question: str, kind: str) -> None:
    assert question_kind(question) == kind


def test_what_is_gets_the_definition_first(answerer: ExtractiveAnswerer) -> None:
    given = sources(STEPS, WHAT_IS)
    text = answerer.answer("What is Amazon Lex?", given)
    assert text.startswith("Amazon Lex is an AWS service for building conversational interfaces for applications "
                           "using voice and text [2].")
    _, citations, invalid = check_citations(text, given)
    assert invalid == 0 and [c.number for c in citations] == [2]


def test_how_do_i_gets_the_steps_in_order(answerer: ExtractiveAnswerer) -> None:
    text = answerer.answer("How do I delete a bot?", sources(WHAT_IS, STEPS))
    assert text.index("Sign in") < text.index("choose the bot") < text.index("Choose Actions") < text.index("Confirm")
    assert text.count("[2]") == 4


def test_how_many_gets_the_number(answerer: ExtractiveAnswerer) -> None:
    text = answerer.answer("How many bots can I have per account?", sources(WHAT_IS, LIMITS))
    assert text == "Bots per account: 250 [2]."


def test_yes_no_is_decided_by_the_sentence_that_answers(answerer: ExtractiveAnswerer) -> None:
    assert answerer.answer("Does Amazon Lex store user utterances when childDirected is true?",
                           sources(CHILD)).startswith("No. If you set childDirected to true")
    assert answerer.answer("Can I delete a bot from the Amazon Lex console?",
                           sources(STEPS)).startswith("Yes. ")
    # a negation about something else decides nothing: the documentation's "not" must deny what is asked
    aside = "# Tagging\n\nAWS does not apply any semantic meaning to your tags.\n\nTag keys are case sensitive.\n"
    assert answerer.answer("Does AMI support tags?", sources(aside)) == (
        "Yes. AWS does not apply any semantic meaning to your tags [1].")


def test_nothing_relevant_says_so(answerer: ExtractiveAnswerer) -> None:
    assert answerer.answer("What is the capital of France?", sources(LIMITS)).startswith("I don't know")
    assert answerer.answer("What is Amazon Lex?", []).startswith("I don't know")
