"""The hallucination benchmark: does the verifier flag what its cited source does not say.

From any corpus it builds sentences with a known truth, each citing one passage as ``[1]``:

* **faithful**: a sentence of the passage, copied, or lightly paraphrased (a parenthesis dropped, a phrase
  reworded); the verifier must not flag these;
* **perturbed**, one kind each: ``number`` (a number changed), ``unit`` (its unit changed: days to hours),
  ``entity`` (a name or identifier swapped for another of the corpus's), ``negation`` (a "not" inserted),
  ``affirmation`` (a negation removed), ``wrong-source`` (a true sentence cited to the passage of another
  document that shares the most words with it); the verifier must flag these.

It reports detection per kind, false alarms on faithful sentences, and milliseconds per sentence and per answer
of five sentences. Deterministic for a seed.
"""

from __future__ import annotations

import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ragline.providers.local.sentences import units
from ragline.providers.local.verifier import NEGATION, UNITS, names, terms
from ragline.seams import Verifier
from ragline.types import Chunk, Source

KINDS = ("faithful", "paraphrase", "number", "unit", "entity", "negation", "affirmation", "wrong-source")
_UNIT_SWAP = {"second": "minutes", "minute": "hours", "hour": "days", "day": "weeks", "week": "months",
              "month": "years", "year": "months", "millisecond": "seconds", "kb": "MB", "mb": "GB", "gb": "TB",
              "tb": "GB", "byte": "KB", "percent": "times", "character": "words"}
_AUXILIARY = re.compile(r"\b(is|are|can|will|must|should|was|were|has|have|does|do|may)\b(?! not)")
_PARAPHRASES = ((r"\bfor example\b", "for instance"), (r"\bYou can\b(?!['’]t)", "It is possible to"),
                (r"\byou can\b(?!['’]t)", "it is possible to"), (r"\bin order to\b", "to"), (r"\bUse\b", "Utilize"),
                (r"\bHowever, ", ""), (r"\balso\b ", ""), (r"\bcontains\b", "includes"), (r"\bcreate\b", "make"),
                (r"\bmultiple\b", "several"), (r"\bspecify\b", "provide"), (r"\bthe following\b", "these"))


@dataclass(frozen=True, slots=True)
class Case:
    """One sentence with a known truth, and the passage it cites."""

    kind: str
    claim: str
    source: Source
    origin: str  # the passage sentence it was made from

    @property
    def faithful(self) -> bool:
        """Whether the cited passage says it."""
        return self.kind in ("faithful", "paraphrase")


def source_of(chunk: Chunk, number: int = 1) -> Source:
    """A passage as the answer's source ``[number]``."""
    return Source(number, chunk.doc_id, chunk.title, chunk.heading, chunk.page, 0.0, chunk.text)


def _paraphrase(sentence: str) -> str | None:
    out = re.sub(r"\s*\([^)]{1,80}\)", "", sentence)
    for pattern, repl in _PARAPHRASES:
        out = re.sub(pattern, repl, out, count=1)
    return out if out != sentence and len(out.split()) >= 6 else None


def change_number(sentence: str, rng: random.Random) -> str | None:
    """The sentence with one of its numbers (not a year) multiplied or moved; None when it has none."""
    found = [m for m in re.finditer(r"(?<![\w.\-])\d+(?:\.\d+)?(?![\w.]\d)", sentence)
             if not re.fullmatch(r"(19|20)\d\d", m.group(0))]
    if not found:
        return None
    match = rng.choice(found)
    number = float(match.group(0))
    new = int(number * rng.choice((2, 3, 10))) if number.is_integer() and number > 1 else number + 1
    return sentence[: match.start()] + (f"{new:g}" if isinstance(new, float) else str(new)) + sentence[match.end():]


def change_unit(sentence: str) -> str | None:
    """The sentence with the unit after a number changed (days to weeks, MB to GB); None when it has none."""
    for match in re.finditer(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?:\s|\s?-\s?)([A-Za-z]+\b|%)", sentence):
        unit = UNITS.get(match.group(2).lower(), "")
        if unit in _UNIT_SWAP:
            start, end = match.span(2)
            return sentence[:start] + _UNIT_SWAP[unit] + sentence[end:]
    return None


def _entity(sentence: str, pool: Sequence[str], text: str, rng: random.Random) -> str | None:
    own = [n for n in names(sentence) if len(n) > 3]
    if not own:
        return None
    name = rng.choice(sorted(own))
    others = [n for n in pool if n.lower() not in text.lower() and n[0].isupper() == name[0].isupper()
              and ("." in n) == ("." in name)]
    if not others:
        return None
    at = sentence.rindex(name)  # the last mention: the first may begin the sentence, where it is not a name
    return sentence[:at] + rng.choice(others) + sentence[at + len(name):]


def negate(sentence: str) -> str | None:
    """The sentence with "not" after its first auxiliary verb; None when it already negates or has none."""
    if NEGATION.search(sentence):
        return None
    out = _AUXILIARY.sub(lambda m: f"{m.group(1)} not", sentence, count=1)
    return out if out != sentence else None


def affirm(sentence: str) -> str | None:
    """The sentence with its first negation removed; None when it has none."""
    out = sentence
    for pattern, repl in ((r"\bcannot\b", "can"), (r"\bcan't\b", "can"), (r"\b(do|does|is|are|was|were|will|"
                                                                          r"should|must|has|have)n't\b", r"\1"),
                          (r"\b(\w+) not\b", r"\1"), (r"\bnever\b", "always"), (r"\bno\b", "some")):
        out = re.sub(pattern, repl, out, count=1)
        if out != sentence:
            return out
    return None


def build_cases(chunks: Sequence[Chunk], per_kind: int, seed: int = 7) -> list[Case]:
    """Up to ``per_kind`` sentences of each kind, from passages of the corpus (at most one per passage and kind)."""
    rng = random.Random(seed)
    pool = sorted({n for c in chunks for u in units(c.text)[:20] for n in names(u.text) if len(n) > 3})
    by_terms = [(c, terms(c.text)) for c in chunks]
    order = list(range(len(chunks)))
    rng.shuffle(order)
    made: dict[str, list[Case]] = defaultdict(list)
    for index in order:
        if all(len(made[k]) >= per_kind for k in KINDS):
            break
        chunk = chunks[index]
        candidates = [u.text for u in units(chunk.text) if u.kind != "row" and 8 <= len(u.text.split()) <= 45]
        if not candidates:
            continue
        sentence = rng.choice(candidates)
        source = source_of(chunk)
        makers: dict[str, Callable[[str], str | None]] = {
            "faithful": lambda s: s,
            "paraphrase": _paraphrase,
            "number": lambda s: change_number(s, rng),
            "unit": change_unit,
            "entity": partial(_entity, pool=pool, text=chunk.text, rng=rng),
            "negation": negate,
            "affirmation": affirm,
        }
        for kind, make in makers.items():
            if len(made[kind]) >= per_kind:
                continue
            claim = make(sentence)
            if claim is not None:
                made[kind].append(Case(kind, claim, source, sentence))
        if len(made["wrong-source"]) < per_kind:
            wrong = _wrong_source(sentence, chunk, by_terms)
            if wrong is not None:
                made["wrong-source"].append(Case("wrong-source", sentence, source_of(wrong), sentence))
    return [case for kind in KINDS for case in made[kind]]


def _wrong_source(sentence: str, chunk: Chunk, by_terms: Sequence[tuple[Chunk, set[str]]]) -> Chunk | None:
    """The passage of another document sharing the most words with the sentence, unless it says it too."""
    words = terms(sentence)
    best, best_share = None, -1.0
    for other, other_terms in by_terms:
        if other.doc_id == chunk.doc_id or not words:
            continue
        share = len(words & other_terms) / len(words)
        if share > best_share:
            best, best_share = other, share
    return best if best is not None and best_share < 0.7 else None


def run(verifier: Verifier, cases: Sequence[Case]) -> dict[str, Any]:
    """Detection per kind, false alarms, and timings."""
    flagged: dict[str, list[bool]] = defaultdict(list)
    examples: dict[str, list[dict[str, str]]] = defaultdict(list)
    spent = 0.0
    for case in cases:
        mark = time.perf_counter()
        verdict, reason = verifier.check("", case.claim, [case.source])
        spent += time.perf_counter() - mark
        wrong = (verdict == "unsupported") == case.faithful
        flagged[case.kind].append(verdict == "unsupported")
        if wrong and len(examples[case.kind]) < 5:
            examples[case.kind].append({"claim": case.claim, "origin": case.origin, "doc_id": case.source.doc_id,
                                        "verdict": verdict, "reason": reason})
    perturbed = [f for k, v in flagged.items() if k not in ("faithful", "paraphrase") for f in v]
    faithful = [f for k in ("faithful", "paraphrase") for f in flagged.get(k, [])]
    per_sentence = spent / max(len(cases), 1)
    return {
        "sentences": len(cases),
        "perturbed": len(perturbed),
        "faithful": len(faithful),
        "detected": round(sum(perturbed) / max(len(perturbed), 1), 4),
        "false_alarms": round(sum(faithful) / max(len(faithful), 1), 4),
        "by_kind": {k: {"n": len(v), "flagged": round(sum(v) / max(len(v), 1), 4)} for k, v in flagged.items()},
        "ms_per_sentence": round(per_sentence * 1000, 2),
        "ms_per_answer_of_5": round(per_sentence * 5000, 1),
        "misses": dict(examples),
    }


def time_answers(make: Callable[[], Verifier], cases: Sequence[Case], answers: int = 40) -> float:
    """Milliseconds to verify an answer of five sentences that cite five passages, cold caches (median)."""
    faithful = [c for c in cases if c.kind == "faithful"]
    spans = []
    for start in range(0, min(len(faithful) - 5, answers * 5), 5):
        group = faithful[start:start + 5]
        sources = [Source(n, c.source.doc_id, c.source.title, c.source.heading, None, 0.0, c.source.excerpt)
                   for n, c in enumerate(group, start=1)]
        fresh = make()  # cold caches: nothing of another answer is reused
        mark = time.perf_counter()
        for n, case in enumerate(group, start=1):
            fresh.check("", case.claim, [sources[n - 1]])
        spans.append(time.perf_counter() - mark)
    spans.sort()
    return round(spans[len(spans) // 2] * 1000, 1) if spans else 0.0


def format_summary(summary: dict[str, Any]) -> str:
    """A readable report."""
    lines = [f"sentences: {summary['sentences']} ({summary['faithful']} faithful, {summary['perturbed']} perturbed)",
             f"perturbed flagged: {summary['detected']:.1%}    faithful flagged (false alarms): "
             f"{summary['false_alarms']:.1%}",
             f"time: {summary['ms_per_sentence']} ms per sentence; {summary.get('ms_per_answer', '?')} ms per "
             "answer of five sentences (median, cold caches)", "", "kind            n   flagged"]
    for kind in KINDS:
        if kind in summary["by_kind"]:
            row = summary["by_kind"][kind]
            lines.append(f"{kind:<14}{row['n']:>4}   {row['flagged']:.1%}")
    return "\n".join(lines)
