"""``ragline eval qa``: the metrics on hand-checked cases, the CSV formats of the shipped sets, and a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragline.errors import InputError
from ragline.eval.qa import (
    QAItem,
    QAResult,
    aggregate,
    check_answer_citations,
    gold_rank,
    is_gold,
    load_qa,
    rouge_l,
    says_unknown,
    select_documents,
    token_f1,
)
from ragline.types import Source
from test_cli import run

from conftest import write


def test_token_f1_and_rouge_l_match_hand_computed_values() -> None:
    # Without articles: [cat sat on mat] against [cat is on mat]: 3 of 4 tokens shared each way.
    assert token_f1("The cat sat on the mat", "the cat is on the mat") == pytest.approx(2 * 0.75 * 0.75 / 1.5)
    # LCS of [the cat sat on the mat] and [the cat is on the mat] is "the cat on the mat": 5 of 6 each way.
    assert rouge_l("The cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("mat the on", "the cat is on the mat") == pytest.approx(2 * (2 / 3) * (2 / 6) / (2 / 3 + 2 / 6))
    assert token_f1("Yes [1].", "yes") == 1.0  # citation markers and punctuation are not words
    assert token_f1("", "something") == 0.0 and rouge_l("", "something") == 0.0


def test_declining_answers_are_recognised() -> None:
    assert says_unknown("I don't know: no documents match this question.")
    assert says_unknown("The sources do not mention the price.")
    assert says_unknown("")
    assert not says_unknown("Amazon Lex builds chat bots [1].")


def test_gold_documents_match_by_id_file_name_or_pattern() -> None:
    assert is_gold("amazon-lex-developer-guide/what-is.md", ["amazon-lex-developer-guide/what-is.md"])
    assert is_gold("/data/sec/2023 Q1 AAPL.pdf", ["*AAPL*"])
    assert is_gold("docs/2023 Q1 AAPL.pdf", ["2023 Q1 AAPL.pdf"])
    assert not is_gold("docs/2023 Q1 AMZN.pdf", ["*AAPL*", "2023 Q1 AAPL.pdf"])
    assert gold_rank(["a.md", "b.md", "c.md"], ["c.md"]) == 3
    assert gold_rank(["a.md"], ["z.md"]) is None


def test_both_shipped_csv_layouts_load(tmp_path: Path) -> None:
    aws = write(tmp_path, "qa.csv", (
        "Question,Answer_True,Yes_No_True,Document_True\n"
        "Is Amazon EBS encryption available on M3 instances? ,It is available on M3,Yes,ec2/EBSEncryption.md\n"
    ))
    (item,) = load_qa(aws)
    assert item == QAItem(1, "Is Amazon EBS encryption available on M3 instances?", "It is available on M3",
                          ("ec2/EBSEncryption.md",), "yes")
    sec = tmp_path / "qna.csv"  # the SEC set: a byte-order mark, multi-line answers, patterns for gold
    sec.write_text('\ufeffQuestion,Source Docs,Question Type,Source Chunk Type,Answer\n'
                   '"How did sales change?","*AAPL*, 2023 Q1 MSFT.pdf",Multi-Doc RAG,Table,"Up.\n\nThen down."\n',
                   encoding="utf-8")
    (item,) = load_qa(sec)
    assert item.gold == ("*AAPL*", "2023 Q1 MSFT.pdf") and item.reference == "Up.\n\nThen down."


def test_a_csv_without_the_needed_columns_says_which(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.csv", "Prompt,Answer\nhello,world\n")
    with pytest.raises(InputError, match=r"no question column \(looked for question, query; found Prompt, Answer\)"):
        load_qa(bad)
    with pytest.raises(InputError, match="no questions"):
        load_qa(write(tmp_path, "empty.csv", "Question,Answer,Gold\n"))


def source(n: int, text: str) -> Source:
    return Source(n, f"doc{n}.md", f"Doc {n}", "", None, 1.0, text)


def test_citations_are_valid_only_when_the_cited_source_supports_the_sentence() -> None:
    sources = [source(1, "Amazon Lex builds conversational interfaces with voice and text."),
               source(2, "Billing is monthly.")]
    # A marker after the full stop cites the sentence before it.
    good = check_answer_citations("Amazon Lex builds conversational interfaces. [1] Billing is monthly [2].", sources)
    assert (good.markers, good.valid_markers, good.cited_sentences, good.supported_sentences) == (2, 2, 2, 2)
    assert good.valid
    wrong = check_answer_citations("Amazon Lex builds conversational interfaces [2].", sources)
    assert (wrong.cited_sentences, wrong.supported_sentences) == (1, 0) and not wrong.valid
    missing = check_answer_citations("Billing is monthly [7].", sources)
    assert (missing.markers, missing.valid_markers) == (1, 0) and not missing.valid


def test_document_selection_keeps_every_gold_document() -> None:
    ids = [f"guide/page{i}.md" for i in range(100)]
    items = [QAItem(1, "q", "a", ("guide/page42.md",)), QAItem(2, "q", "a", ("guide/page7*",))]
    chosen = select_documents(ids, items, 20)
    assert len(chosen) == 20 and {"guide/page42.md", "guide/page7.md", "guide/page70.md"} <= chosen
    assert select_documents(ids, items, 20) == chosen  # the same slice every run
    assert select_documents(ids, items, None) == set(ids)


def test_aggregate_counts_shares_over_the_right_questions() -> None:
    def result(rank: int | None, unknown: bool, markers: int, valid: bool, in_sources: bool | None) -> QAResult:
        return QAResult(1, "q", "r", ["g"], [], rank, "a", [], 0.5, 0.25, 0.75, unknown,
                        {"markers": markers, "valid_markers": markers, "cited_sentences": markers,
                         "supported_sentences": markers if valid else 0}, valid,
                        {"retrieve": 10.0, "total": 100.0}, gold_in_sources=in_sources)

    summary = aggregate([result(1, False, 1, True, True), result(4, False, 2, False, False),
                         result(None, True, 0, True, None)])
    # hit@5 counts the first five documents of a deeper retrieval (rank 4 is in); the sources given to the
    # answer held the gold page once, over the two questions that were answered (the third failed: None)
    assert summary["gold_in_sources"] == 0.5
    assert summary["hit@1"] == pytest.approx(1 / 3, abs=1e-4) and summary["hit@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["mrr@10"] == pytest.approx((1 + 0.25) / 3, abs=1e-4)
    assert summary["unknown_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["answers_with_citations"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["citations_valid"] == 0.5  # over the answers that cite: one of two
    assert summary["supported_sentences"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["latency_ms"]["total"] == {"p50": 100.0, "p95": 100.0}
    assert summary["context_recall"] == 0.75


def test_context_recall_counts_the_reference_words_the_sources_hold() -> None:
    from ragline.eval.qa import context_recall

    reference = "Amazon Lex stores utterances for 15 days."
    assert context_recall(reference, ["Lex keeps utterances 15 days.", "Amazon stores data."]) == pytest.approx(
        6 / 6)
    assert context_recall(reference, ["Amazon Lex is a service."]) == pytest.approx(2 / 6)
    assert context_recall("", ["anything"]) == 1.0


def test_eval_qa_runs_the_real_pipeline_and_writes_json_and_html(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    write(corpus, "lex.md", "# What is Amazon Lex?\n\nAmazon Lex is an AWS service for building conversational "
                            "interfaces into applications using voice and text.\n")
    write(corpus, "pricing.md", "# Pricing\n\nWith Amazon Lex you pay only for the text or speech requests "
                                "that your bots process. There are no upfront costs or minimum fees.\n")
    write(corpus, "regions.md", "# Regions\n\nAmazon Polly is available in many AWS Regions worldwide.\n")
    qa = write(tmp_path, "qa.csv", (
        "Question,Answer_True,Yes_No_True,Document_True\n"
        "What is Amazon Lex?,Amazon Lex is an AWS service for building conversational interfaces,,lex.md\n"
        "Does Amazon Lex have minimum fees?,There are no upfront costs or minimum fees,No,pricing.md\n"
        "Who won the 1930 World Cup?,Uruguay,,history.md\n"
    ))
    out = tmp_path / "report"
    proc = run(tmp_path / "home", "eval", "qa", "--qa", str(qa), "--corpus", str(corpus), "--model", "local",
               "--max-tokens", "24", "--out", str(out))
    assert "3 documents: 3 added" in proc.stderr
    assert "[3/3] gold rank -" in proc.stderr  # the gold page is not in the corpus: reported, not an error
    for line in ("questions                3", "hit@1", "mrr@10", "token_f1", "rouge_l", "unknown_rate",
                 "latency retrieve", "latency first_token"):
        assert line in proc.stdout
    report = json.loads((out / "qa.json").read_text())
    assert report["settings"]["model"].startswith("SmolLM2") and report["settings"]["documents"] == 3
    lex, pricing, unanswerable = report["results"]
    assert lex["gold_rank"] == 1 and pricing["gold_rank"] == 1 and unanswerable["gold_rank"] is None
    assert report["summary"]["hit@1"] == pytest.approx(2 / 3, abs=1e-4)
    assert lex["gold_in_sources"] and pricing["gold_in_sources"] and unanswerable["gold_in_sources"] is False
    assert report["summary"]["gold_in_sources"] == pytest.approx(2 / 3, abs=1e-4)
    assert lex["answer"] and {"retrieve", "first_token", "total"} <= set(lex["timings_ms"])
    assert report["summary"]["errors"] == 0
    page = (out / "qa.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "What is Amazon Lex?" in page
    assert page.count("<tr class=") == 3 and "<th>in sources</th>" in page
