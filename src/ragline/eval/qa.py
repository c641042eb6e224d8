"""Answer-quality evaluation over a question set with reference answers and gold documents (``ragline eval qa``).

Per question: where the gold document ranks (hit@1/5/10, MRR@10), the answer, whether its citations are valid
(every marker names a retrieved source, and the cited source supports the sentence), token-F1 and ROUGE-L
against the reference, whether it said "I don't know", and each stage's latency. The report is JSON, an HTML
page with plots (when matplotlib is installed: ``ragline[eval]``), and aggregates for the terminal.

Citation support is lexical: a cited sentence is supported when at least ``SUPPORT_SHARE`` of its content
words (stop words and markers removed) occur in one of the sources it cites. It is a cheap, explainable check
that catches citations to the wrong source; it does not judge paraphrase or entailment.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import re
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragline.errors import InputError
from ragline.query.citations import MARKER, marker_numbers
from ragline.query.engine import Engine
from ragline.types import Answer, Done, ErrorEvent, Query, Source, Token

KS = (1, 5, 10)
SUPPORT_SHARE = 0.6
STAGES = ("retrieve", "gate", "prompt", "first_token", "generate", "verify", "total")
_QUESTION = ("question", "query")
_ANSWER = ("answer_true", "answer", "reference", "reference_answer")
_GOLD = ("document_true", "source docs", "gold", "gold_docs", "doc_id")
_LABEL = ("yes_no_true",)
_IDK = re.compile(
    r"\b(i (?:do not|don't|dont) know|no documents match|(?:do|does) not (?:contain|mention|provide|say)"
    r"|cannot (?:answer|find|determine)|not (?:enough|sufficient) information)\b"
)
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
STOP_WORDS = frozenset((  # noqa: SIM905 - a sentence of words reads better than 120 quoted ones
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those there their they them you your we our i he she his her not no yes do does did can could will "
    "would should may might must shall have has had so than then such into about over under which who whom "
    "what when where why how all any each both more most other some only own same also very just"
).split())


@dataclass(frozen=True, slots=True)
class QAItem:
    """One question of the set: its reference answer, the documents that answer it, and a yes/no label if any."""

    number: int
    question: str
    reference: str
    gold: tuple[str, ...]
    label: str = ""


def _column(fields: Sequence[str], names: Sequence[str], what: str, path: Path, required: bool = True) -> str | None:
    lowered = {f.strip().lstrip("\ufeff").lower(): f for f in fields}
    for name in names:
        if name in lowered:
            return lowered[name]
    if required:
        raise InputError(f"{path}: no {what} column (looked for {', '.join(names)}; found {', '.join(fields)})")
    return None


def load_qa(path: Path) -> list[QAItem]:
    """Questions from a CSV with a question, a reference answer and the gold document(s) of each row.

    Gold documents are document ids or file-name patterns (``*AAPL*``), several separated by commas or ``;``.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            q_col = _column(fields, _QUESTION, "question", path)
            a_col = _column(fields, _ANSWER, "reference answer", path)
            g_col = _column(fields, _GOLD, "gold document", path)
            l_col = _column(fields, _LABEL, "label", path, required=False)
            items = []
            for n, row in enumerate(reader, start=1):
                question = (row.get(q_col or "") or "").strip()
                if not question:
                    continue
                gold = tuple(g.strip() for g in re.split(r"[,;]", row.get(g_col or "") or "") if g.strip())
                label = (row.get(l_col) or "").strip().lower() if l_col else ""
                items.append(QAItem(n, question, (row.get(a_col or "") or "").strip(), gold, label))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"cannot read the question set {path}: {err}") from err
    if not items:
        raise InputError(f"{path}: no questions")
    return items


def is_gold(doc_id: str, gold: Sequence[str]) -> bool:
    """Whether a document id is one of the gold documents (an exact id, its file name, or a pattern)."""
    name = doc_id.rsplit("/", 1)[-1]
    for pattern in gold:
        if doc_id == pattern or doc_id.endswith("/" + pattern) or name == pattern:
            return True
        wildcard = any(c in pattern for c in "*?[")
        if wildcard and (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(doc_id, pattern)):
            return True
    return False


def gold_rank(ranked_doc_ids: Sequence[str], gold: Sequence[str]) -> int | None:
    """1-based rank of the first gold document, or None."""
    return next((i for i, d in enumerate(ranked_doc_ids, start=1) if is_gold(d, gold)), None)


def select_documents(doc_ids: Sequence[str], items: Sequence[QAItem], max_docs: int | None) -> set[str]:
    """Every gold document, then others in a fixed pseudo-random order (a hash of the id), up to ``max_docs``."""
    if max_docs is None or max_docs >= len(doc_ids):
        return set(doc_ids)
    gold = [p for item in items for p in item.gold]
    chosen = {d for d in doc_ids if is_gold(d, gold)}
    for doc_id in sorted(doc_ids, key=lambda d: hashlib.sha1(d.encode()).hexdigest()):
        if len(chosen) >= max_docs:
            break
        chosen.add(doc_id)
    return chosen


def tokens(text: str) -> list[str]:
    """Lower-case word tokens, citation markers removed."""
    return _WORD.findall(MARKER.sub(" ", text).lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 (bag of words, articles and punctuation ignored)."""
    pred = [t for t in tokens(prediction) if t not in ("a", "an", "the")]
    ref = [t for t in tokens(reference) if t not in ("a", "an", "the")]
    if not pred or not ref:
        return float(pred == ref)
    counts: dict[str, int] = {}
    for t in ref:
        counts[t] = counts.get(t, 0) + 1
    common = 0
    for t in pred:
        if counts.get(t, 0) > 0:
            counts[t] -= 1
            common += 1
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def context_recall(reference: str, contexts: Sequence[str]) -> float:
    """The share of the reference answer's distinct words (stop words aside) found in the sources given."""
    wanted = {t for t in tokens(reference) if t not in STOP_WORDS}
    if not wanted:
        return 1.0
    found = {t for text in contexts for t in tokens(text)}
    return len(wanted & found) / len(wanted)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common subsequence of tokens (β = 1)."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return 0.0
    previous = [0] * (len(ref) + 1)
    for p in pred:
        current = [0]
        for j, r in enumerate(ref, start=1):
            current.append(previous[j - 1] + 1 if p == r else max(previous[j], current[j - 1]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def says_unknown(text: str) -> bool:
    """Whether the answer declines ("I don't know", "the sources do not mention ...")."""
    return bool(_IDK.search(text.lower())) or not text.strip()


def supported(sentence: str, source_text: str) -> bool:
    """Whether enough of the sentence's content words occur in the source."""
    words = {t for t in tokens(sentence) if t not in STOP_WORDS}
    if not words:
        return True
    found = set(tokens(source_text))
    return len(words & found) / len(words) >= SUPPORT_SHARE


@dataclass(slots=True)
class CitationCheck:
    """The citations of one answer: markers seen and valid, cited sentences and how many are supported."""

    markers: int = 0
    valid_markers: int = 0
    cited_sentences: int = 0
    supported_sentences: int = 0

    @property
    def valid(self) -> bool:
        """Every marker names a retrieved source and every cited sentence is supported (vacuous if none)."""
        return self.valid_markers == self.markers and self.supported_sentences == self.cited_sentences


def check_answer_citations(raw_text: str, sources: Sequence[Source]) -> CitationCheck:
    """Check the model's own markers (before ragline removed the invalid ones) against the sources."""
    by_number = {s.number: s for s in sources}
    check = CitationCheck()
    # "Text. [1] Next" cites the sentence before the marker: move such markers before the full stop.
    text = re.sub(r"([.!?])((?:\s*" + MARKER.pattern + r")+)", lambda m: m.group(2) + m.group(1), raw_text)
    for sentence in _SENTENCE.split(text):
        numbers = [n for m in MARKER.finditer(sentence) for n in marker_numbers(m.group(1))]
        if not numbers:
            continue
        good = [by_number[n] for n in dict.fromkeys(numbers) if n in by_number]
        check.markers += len(numbers)
        check.valid_markers += sum(1 for n in numbers if n in by_number)
        check.cited_sentences += 1
        if good and any(supported(sentence, s.excerpt) for s in good):
            check.supported_sentences += 1
    return check


@dataclass(slots=True)
class QAResult:
    """One question's outcome."""

    number: int
    question: str
    reference: str
    gold: list[str]
    retrieved: list[str]
    gold_rank: int | None
    answer: str
    cited: list[str]
    f1: float
    rouge_l: float
    context_recall: float
    unknown: bool
    citations: dict[str, Any]
    citations_valid: bool
    timings_ms: dict[str, float]
    label: str = ""
    yes_no_match: bool | None = None
    partial: bool = False
    error: str = ""
    verdicts: dict[str, int] = field(default_factory=dict)  # shown claims by verdict (the verifier's), + dropped
    gold_in_sources: bool | None = None  # a gold document among the sources the answer was given (None: no answer)


def _yes_no(answer: str, label: str) -> bool | None:
    if label not in ("yes", "no"):
        return None
    first = tokens(answer)[:3]
    said = "yes" if "yes" in first else "no" if "no" in first else ""
    return said == label if said else False


def evaluate_question(engine: Engine, item: QAItem, *, k: int, mode: str, max_tokens: int,
                      filters: dict[str, str] | None = None) -> QAResult:
    """Retrieve and answer one question, and score it."""
    started = time.perf_counter()
    raw: list[str] = []
    answer: Answer | None = None
    error = ""
    try:
        for event in engine.stream(Query(item.question, filters or {}, k, mode, max_tokens=max_tokens,
                                         use_cache=False)):
            if isinstance(event, Token):
                raw.append(event.text)
            elif isinstance(event, Done):
                answer = event.answer
            elif isinstance(event, ErrorEvent):
                error = f"{event.kind}: {event.message}"
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    # Ranks come from a deeper retrieval after the answer, so that the answer's own timings are cold.
    hits = engine.retrieve(item.question, k=max(KS) * 2, mode=mode, filters=filters)
    ranked = list(dict.fromkeys(h.chunk.doc_id for h in hits))
    rank = gold_rank(ranked[: max(KS)], item.gold)
    text = answer.text if answer is not None else ""
    sources = answer.sources if answer is not None else []
    check = check_answer_citations("".join(raw), sources)
    timings = {name: round(seconds * 1000, 1) for name, seconds in (answer.timings if answer else {}).items()}
    if "total" not in timings:
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
    return QAResult(
        number=item.number, question=item.question, reference=item.reference, gold=list(item.gold),
        retrieved=ranked[: max(KS)], gold_rank=rank, answer=text,
        cited=[c.doc_id for c in answer.citations] if answer else [],
        f1=round(token_f1(text, item.reference), 4), rouge_l=round(rouge_l(text, item.reference), 4),
        context_recall=round(context_recall(item.reference, [s.excerpt for s in sources]), 4),
        unknown=says_unknown(text), citations=asdict(check), citations_valid=check.valid,
        timings_ms=timings, label=item.label, yes_no_match=_yes_no(text, item.label),
        partial=bool(answer and answer.partial), error=error, verdicts=_verdict_counts(answer),
        gold_in_sources=any(is_gold(s.doc_id, item.gold) for s in sources) if answer is not None else None,
    )


def _verdict_counts(answer: Answer | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in answer.sentences if answer else []:
        if v.verdict != "remark":
            key = v.verdict if v.shown else "dropped"
            counts[key] = counts.get(key, 0) + 1
    return counts


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else 0.0


def _percentile(values: Sequence[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def aggregate(results: Sequence[QAResult]) -> dict[str, Any]:
    """Means and shares over the questions, and latency p50/p95 per stage."""
    n = len(results)
    cited = [r for r in results if r.citations["markers"]]
    markers = sum(r.citations["markers"] for r in results)
    sentences = sum(r.citations["cited_sentences"] for r in results)
    labelled = [r for r in results if r.yes_no_match is not None]
    out: dict[str, Any] = {"questions": n}
    for k in KS:
        out[f"hit@{k}"] = _mean(float(r.gold_rank is not None and r.gold_rank <= k) for r in results)
    out["mrr@10"] = _mean(1.0 / r.gold_rank if r.gold_rank else 0.0 for r in results)
    # hit@k counts the first k distinct documents of a deeper retrieval; this counts the k sources themselves
    answered = [r for r in results if r.gold_in_sources is not None]
    out["gold_in_sources"] = _mean(float(bool(r.gold_in_sources)) for r in answered) if answered else None
    out["context_recall"] = _mean(r.context_recall for r in results)
    out["token_f1"] = _mean(r.f1 for r in results)
    out["rouge_l"] = _mean(r.rouge_l for r in results)
    out["unknown_rate"] = _mean(float(r.unknown) for r in results)
    out["answers_with_citations"] = round(len(cited) / n, 4) if n else 0.0
    out["marker_validity"] = round(sum(r.citations["valid_markers"] for r in results) / markers, 4) if markers else None
    out["supported_sentences"] = (
        round(sum(r.citations["supported_sentences"] for r in results) / sentences, 4) if sentences else None
    )
    out["citations_valid"] = _mean(float(r.citations_valid) for r in cited) if cited else None
    shown = {kind: sum(r.verdicts.get(kind, 0) for r in results) for kind in ("supported", "unsupported", "uncited")}
    claims = sum(shown.values())
    # the verifier's verdicts on what the reader was shown (RAGLINE_VERIFY=drop hides the unsupported ones)
    out["displayed_supported"] = round(shown["supported"] / claims, 4) if claims else None
    out["displayed_unsupported"] = round(shown["unsupported"] / claims, 4) if claims else None
    out["displayed_uncited"] = round(shown["uncited"] / claims, 4) if claims else None
    out["dropped_sentences"] = sum(r.verdicts.get("dropped", 0) for r in results)
    out["yes_no_accuracy"] = _mean(float(bool(r.yes_no_match)) for r in labelled) if labelled else None
    out["errors"] = sum(1 for r in results if r.error)
    out["latency_ms"] = {
        stage: {"p50": _percentile(vals, 50), "p95": _percentile(vals, 95)}
        for stage in STAGES
        if (vals := [r.timings_ms[stage] for r in results if stage in r.timings_ms])
    }
    return out


def run(engine: Engine, items: Sequence[QAItem], *, k: int = 5, mode: str = "hybrid", max_tokens: int = 128,
        progress: Callable[[int, QAResult], None] | None = None) -> list[QAResult]:
    """Evaluate every question in order."""
    engine.retrieve("warm up", k=k, mode=mode)  # load the model, tables and indexes before the first timing
    results = []
    for done, item in enumerate(items, start=1):
        result = evaluate_question(engine, item, k=k, mode=mode, max_tokens=max_tokens)
        results.append(result)
        if progress is not None:
            progress(done, result)
    return results


def format_summary(summary: dict[str, Any]) -> str:
    """The aggregates as aligned lines for the terminal."""
    lines = []
    for key, value in summary.items():
        if key == "latency_ms":
            for stage, p in value.items():
                lines.append(f"{'latency ' + stage:<24} p50 {p['p50']:>8.1f} ms   p95 {p['p95']:>8.1f} ms")
        elif isinstance(value, float):
            lines.append(f"{key:<24} {value:.3f}")
        else:
            lines.append(f"{key:<24} {'n/a' if value is None else value}")
    return "\n".join(lines)


@dataclass(slots=True)
class QAReport:
    """Everything one run produced: its settings, the aggregates, and each question."""

    settings: dict[str, Any]
    summary: dict[str, Any]
    results: list[QAResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"settings": self.settings, "summary": self.summary, "results": [asdict(r) for r in self.results]}
