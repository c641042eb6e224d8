"""Every sentence checked: the sentence cutter, the local verifier (real MiniLM), the relevance gate, the policies,
the hallucination benchmark, and the Bedrock guardrail option against its loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.providers.local.verifier import LocalVerifier
from ragline.query.verify import Checker, SentenceCutter, remark, split_sentences
from ragline.types import Source, Token, Verdict

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "amazon-lex-developer-guide.jsonl.gz"
CHILD = Source(1, "lex/API_PutBot.md", "PutBot", "childDirected", None, 0.0,
               "If you specify `true` for the `childDirected` field, Amazon Lex does not store user utterances. "
               "Bots that are directed at children under age 13 are subject to COPPA.")
DELETE = Source(2, "lex/API_DeleteBot.md", "DeleteBot", "", None, 0.0,
                "Deletes all versions of the bot, including the `$LATEST` version. To delete a specific version "
                "of the bot, use the DeleteBotVersion operation.\n\nThe DeleteBot operation doesn't immediately "
                "remove the bot schema.")
UTTERANCES = Source(3, "lex/API_DeleteUtterances.md", "DeleteUtterances", "", None, 0.0,
                    "Amazon Lex stores the utterances that users send to your bot. Utterances are stored for 15 days "
                    "for use with the GetUtterancesView operation.")
PRICING = Source(4, "lex/what-is.md", "What Is Amazon Lex?", "", None, 0.0,
                 "Amazon Lex is an AWS service for building conversational interfaces for applications using voice "
                 "and text. With the Amazon Lex free tier, you can try Amazon Lex without any initial investment.")


@pytest.fixture(scope="module")
def verifier(minilm) -> LocalVerifier:
    return LocalVerifier(minilm)


def test_sentences_are_cut_only_once_complete_markers_staying_with_their_sentence() -> None:
    cutter = SentenceCutter()
    assert cutter.feed("Amazon Lex stores utterances for 15 days") == []
    assert cutter.feed(". [3]") == []  # more markers may still be coming
    assert cutter.feed(" Use the DeleteBot operation, e.g. for a test bot [2]. Then") == [
        ("Amazon Lex stores utterances for 15 days. [3]", " "),
        ("Use the DeleteBot operation, e.g. for a test bot [2].", " ")]
    assert cutter.end() == [("Then", "")]
    steps = split_sentences("To create a bot:\n1. Open the console [1].\n2. Choose Create [1].")
    assert [s for s, _ in steps] == ["To create a bot:", "1. Open the console [1].", "2. Choose Create [1]."]
    assert "".join(s + sep for s, sep in steps) == "To create a bot:\n1. Open the console [1].\n2. Choose Create [1]."


def test_what_is_not_a_claim_is_a_remark() -> None:
    question = "Does Amazon Lex store utterances?"
    assert remark(question, "I don't know: the sources do not say.") == "declines to answer"
    assert remark(question, "The passages found do not mention retention.") == "declines to answer"
    assert remark(question, "Amazon Lex does not support streaming [1].") == ""  # a negative claim, checked
    assert remark(question, "Yes.") == "not a claim"
    assert remark(question, "Here are the steps:") == "introduces what follows"
    assert remark(question, "Amazon Lex does store utterances.") == "restates the question"
    assert remark(question, "Yes, Amazon Lex does store utterances.") == ""  # the answer itself: a claim
    assert remark(question, "Utterances are kept for 15 days.") == ""  # a claim, uncited
    assert remark(question, "Utterances are kept for 15 days [3].") == ""


@pytest.mark.parametrize(("claim", "cited", "why"), [
    # the issue's own examples: a wrong product, and a claim the source denies
    ("The DeleteBots function is available in the Amazon Alexa Deployment.", [DELETE], "does not mention"),
    ("If childDirected is true, user utterances are encrypted and stored for 15 days.", [CHILD], "15"),
    ("Utterances are stored for 15 hours for use with the GetUtterancesView operation.", [UTTERANCES], "15 day"),
    ("Utterances are stored for 30 days for use with the GetUtterancesView operation.", [UTTERANCES], "30"),
    ("Use the DeleteIntentVersion operation to delete a specific version of the bot.", [DELETE],
     '"DeleteIntentVersion"'),
    ("If you specify true for the childDirected field, Amazon Lex stores user utterances.", [CHILD], "affirms"),
    ("The DeleteBot operation immediately removes the bot schema.", [DELETE], "affirms"),
    ("Amazon Lex is not an AWS service for building conversational interfaces.", [PRICING], "denies"),
    ("With the Amazon Lex free tier, you can try Amazon Lex without any initial investment.", [UTTERANCES],
     "does not"),  # true, but cited to the wrong source
])
def test_the_local_verifier_flags_what_the_cited_source_does_not_say(verifier, claim, cited, why) -> None:
    verdict, reason = verifier.check("", claim, cited)
    assert verdict == "unsupported", claim
    assert why in reason and f"[{cited[0].number}]" in reason  # the reader is told which source and why


@pytest.mark.parametrize(("claim", "cited"), [
    ("Amazon Lex stores the utterances that users send to your bot.", [UTTERANCES]),
    ("Utterances are kept for fifteen days for the GetUtterancesView operation.", [UTTERANCES]),
    ("To delete one version of a bot, use the DeleteBotVersion operation.", [DELETE]),
    ("Bots directed at children under 13 are subject to COPPA, and Amazon Lex does not store their utterances.",
     [CHILD]),
    ("Amazon Lex is an AWS service for building conversational interfaces using voice and text.", [PRICING, DELETE]),
])
def test_the_local_verifier_supports_what_the_source_says_in_other_words(verifier, claim, cited) -> None:
    assert verifier.check("", claim, cited) == ("supported", "")


def test_the_gate_says_when_the_passages_cannot_answer(verifier) -> None:
    sources = [UTTERANCES, DELETE, PRICING]
    assert verifier.unanswerable("How long are utterances stored?", sources) == ""
    assert "Polly" in verifier.unanswerable("How much does Amazon Polly cost?", sources)
    assert verifier.unanswerable("What is the boiling point of water?", sources).startswith("the passages found")


def test_a_long_question_is_not_declined_for_its_framing_words(minilm) -> None:
    """Five words of the question in the passages suffice: an analyst's framing ("trends", "implications",
    "over recent periods") is not what the passages must say. A short question still needs 60 % of its words."""
    question = ("What notable trends can be discerned in how long Amazon Lex stores user utterances, and what are "
                "the implications over recent periods?")
    sources = [UTTERANCES, CHILD]
    assert LocalVerifier(minilm).unanswerable(question, sources) == ""
    strict = LocalVerifier(minilm, gate_enough_words=99).unanswerable(question, sources)  # the share alone
    assert strict.startswith("the passages found never mention") and "discerned" in strict
    assert "never mention" in LocalVerifier(minilm).unanswerable("Which regions host Amazon Lex bots?", [PRICING])


class _Judge:
    """A verifier that believes only sentences containing 'true'."""

    name = "judge"

    def check(self, question, claim, cited):
        return ("supported", "") if "true" in claim else ("unsupported", "it is false")

    def describe(self):
        return "test"


ANSWER = ["It is ", "true that A [1]. It is ", "false that B [1]. No", "t cited, this. Also true [2]."]


def run_policy(policy: str, threshold: float = 0.5) -> tuple[list, Checker]:
    checker = Checker(_Judge(), "Q?", [PRICING.__class__(1, "a", "A", "", None, 0, "x"),
                                       PRICING.__class__(2, "b", "B", "", None, 0, "y")], policy, threshold)
    events = [e for piece in ANSWER for e in checker.feed(piece)] + list(checker.finish())
    return events, checker


def test_annotate_streams_the_text_as_written_and_a_verdict_after_each_sentence() -> None:
    events, checker = run_policy("annotate")
    assert [type(e).__name__ for e in events[:3]] == ["Token", "Token", "Verdict"]  # verdict once the next began
    verdicts = [e for e in events if isinstance(e, Verdict)]
    assert [v.verdict for v in verdicts] == ["supported", "unsupported", "uncited", "supported"]
    assert checker.text == "".join(ANSWER) and all(v.shown for v in verdicts)
    assert verdicts[1].reason == "it is false" and verdicts[2].reason == "cites no source"


def test_drop_shows_only_supported_sentences_each_with_its_verdict() -> None:
    events, checker = run_policy("drop")
    shown = "".join(e.text for e in events if isinstance(e, Token))
    assert shown == checker.text == "It is true that A [1]. Also true [2]."
    assert [v.shown for v in checker.verdicts] == [True, False, False, True]


def test_drop_keeps_an_answer_that_declines_and_says_so_when_every_claim_went() -> None:
    checker = Checker(_Judge(), "Q?", [], "drop")
    events = [*checker.feed("I don't know: the passages found never mention Polly."), *checker.finish()]
    assert checker.text == "I don't know: the passages found never mention Polly." and not checker.refused
    assert [type(e).__name__ for e in events] == ["Token", "Verdict"]
    checker = Checker(_Judge(), "Q?", [], "drop")
    events = [*checker.feed("Yes. It is false [1]. Also false [2]."), *checker.finish()]
    assert checker.refused and checker.text.startswith("I don't know")
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert tokens == [checker.text]  # the "Yes." went with the claims that decided it
    assert not any(v.shown for v in checker.verdicts)


def test_refuse_replaces_an_answer_its_sources_do_not_support() -> None:
    events, checker = run_policy("refuse", threshold=0.75)  # 2 of 4 supported
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) == 1 and isinstance(events[-1], Token)  # held until every sentence was judged
    assert checker.refused and tokens[0].text.startswith("I don't know: the sources found do not support")
    assert '"A"' in tokens[0].text and '"B"' in tokens[0].text  # what was found
    _, kept = run_policy("refuse", threshold=0.5)
    assert not kept.refused and kept.text == "".join(ANSWER)


def test_the_benchmark_builds_every_kind_and_the_verifier_catches_them(verifier, tmp_path) -> None:
    from ragline.eval import verify as bench
    from ragline.ingest.chunking import Chunker
    from ragline.ingest.pipeline import source_items
    from ragline.providers.local.minilm import wordpiece_tokenizer

    tokenizer = wordpiece_tokenizer()
    chunker = Chunker(tokenizer, lambda t: len(tokenizer.encode(t, add_special_tokens=False).ids))
    items = list(source_items([SAMPLE]))
    chunks = [c for item in items[:120] for c in chunker.chunk(item.load(), doc_id=item.doc_id, content_hash="h",
                                                               tenant="t", language="en")]
    cases = bench.build_cases(chunks, per_kind=8, seed=1)
    kinds = {c.kind for c in cases}
    assert kinds == set(bench.KINDS)
    for case in cases:
        if case.kind not in ("faithful", "wrong-source"):
            assert case.claim != case.origin
    summary = bench.run(verifier, cases)
    assert summary["sentences"] == len(cases)
    assert summary["detected"] >= 0.85 and summary["false_alarms"] <= 0.1, summary["by_kind"]


def test_the_guardrail_verifier_speaks_apply_guardrail(aws_env) -> None:
    from ragline.providers.aws.guardrail import GuardrailVerifier
    from ragline.resilience import RetryPolicy
    from ragline.testing.aws import FakeAWSModels

    with FakeAWSModels(script=["throttle", "ok"]) as fake:
        verifier = GuardrailVerifier("gr-123", "1", region="us-east-1", endpoint_url=fake.endpoint_url,
                                     policy=RetryPolicy(base_delay=0.01, max_delay=0.05))
        assert verifier.check("How long are utterances stored?", "Utterances are stored for 15 days.",
                              [UTTERANCES]) == ("supported", "")
        assert len(fake.requests) == 2  # throttled once, retried
        body = fake.requests[-1]["body"]
        assert fake.requests[-1]["path"] == "/guardrail/gr-123/version/1/apply" and body["source"] == "OUTPUT"
        assert [b["text"]["qualifiers"] for b in body["content"]] == [["grounding_source"], ["query"],
                                                                       ["guard_content"]]
        verdict, reason = verifier.check("Q?", "Pricing is five dollars per month for every customer.", [DELETE])
        assert verdict == "unsupported" and "grounding score" in reason and "[2]" in reason
        # the documented limits are kept: a huge source is cut, not refused
        huge = Source(9, "big", "Big", "", None, 0.0, "Utterances are stored. " * 10_000)
        assert verifier.check("Q" * 5000, "Utterances are stored.", [huge])[0] == "supported"
