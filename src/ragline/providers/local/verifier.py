"""The local verifier: does the cited source say what the sentence claims? Offline, in milliseconds.

No NLI model ships on PyPI, so the check is built from what a reader would check first, then meaning:

1. **Alignment.** The cited sources are cut into units (``sentences.py``); the units sharing the most of the
   claim's content words are the ones it rests on (each with its neighbours, and the source's title and heading).
2. **Hard facts.** Every number (with its unit: "15 days" is not "15 minutes"), every quoted or code identifier
   (``DeleteBot``, ``AMAZON.FallbackIntent``, ``childDirected``) and every name (a capitalised word past the
   first: "Alexa", "Kendra") of the claim must occur in those units; and the claim must not negate what its best
   unit affirms, or affirm what it negates.
3. **Meaning.** A claim whose words mostly occur in one unit is supported; otherwise it and its closest units
   are embedded (the embedding model the index already loaded) and it is supported only when one is close.

The same features make the relevance gate: a question whose names the passages never mention, or whose meaning
is far from every unit of them, gets "I don't know" before any model writes an answer.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragline.providers.local.extractive import STOP, question_kind
from ragline.providers.local.sentences import clean, split_paragraph, units
from ragline.query.retrieval import QueryEmbeddingCache
from ragline.seams import Embedder
from ragline.types import Source, Vectors

_WORD = re.compile(r"[A-Za-z0-9][\w\-.]*[A-Za-z0-9]|[A-Za-z0-9]")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")
_NUMBER = re.compile(r"(?<![\w.\-])(\d+(?:,\d{3})*(?:\.\d+)?)(?![\w.]\d)(?:\s?-?\s?([A-Za-z%]+))?")
_WORD_NUMBERS = {w: str(n) for n, w in enumerate((  # "one" is skipped: it is as often a pronoun as a number
    "zero", "", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"))} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100", "thousand": "1000"}
_WORD_NUMBERS.pop("")
_WORD_NUMBER = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)
UNITS = {
    "ms": "millisecond", "millisecond": "millisecond", "milliseconds": "millisecond", "s": "second",
    "sec": "second", "second": "second", "seconds": "second", "minute": "minute", "minutes": "minute",
    "min": "minute", "hour": "hour", "hours": "hour", "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year", "b": "byte", "byte": "byte",
    "bytes": "byte", "kb": "kb", "kib": "kb", "mb": "mb", "mib": "mb", "gb": "gb", "gib": "gb", "tb": "tb",
    "tib": "tb", "%": "percent", "percent": "percent", "character": "character", "characters": "character",
    "char": "character", "chars": "character", "request": "request", "requests": "request", "tps": "tps",
    "utterance": "utterance", "utterances": "utterance", "slot": "slot", "slots": "slot", "intent": "intent",
    "intents": "intent", "bot": "bot", "bots": "bot", "version": "version", "versions": "version",
}
_SQUASH = re.compile(r"[\s\-_]")
_CLAUSE = re.compile(r"[,;:]\s+(?:and |but |while |whereas |so |or )?|\s+(?:and|but|while|whereas)\s+")
_QUOTED = re.compile(r"`([^`]{2,60})`|\"([^\"]{2,60})\"|“([^”]{2,60})”")
_NAME = re.compile(r"(?<![\w.\-/])([A-Z][\w]*(?:[.\-:/][A-Za-z0-9]+)*)")
_CODE = re.compile(r"(?<![\w.\-/])([A-Za-z][a-z0-9]*[A-Z][\w]*|[A-Za-z]+_[\w]+|[A-Za-z]+\.[A-Za-z][\w.]*|"
                   r"[A-Za-z]+\d[\w]*)")
NEGATION = re.compile(r"\b(not|no|never|none|nothing|neither|nor|cannot|without|unable|unsupported)\b|n[’']t\b",
                      re.IGNORECASE)
_ASKING = frozenset(("what", "how", "why", "when", "where", "which", "who", "whom", "whose", "does", "do", "is",
                     "are", "can", "i", "my", "me", "tell", "explain", "describe", "list", "there", "way", "get",
                     "much", "many", "long", "mean", "meaning", "purpose", "happen", "need", "want", "like"))


def stem(word: str) -> str:
    """A light stem, enough to match plurals and tenses: "utterances" and "utterance", "deleted" and "delete"."""
    word = word.lower().strip(".-")
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def terms(text: str) -> set[str]:
    """The stemmed content words of ``text`` (a possessive's "s" is not one: "Microsoft's" is "Microsoft")."""
    text = _POSSESSIVE.sub("", _WORD_NUMBER.sub(lambda m: _WORD_NUMBERS[m.group(1).lower()], text))
    return {stem(w) for w in _WORD.findall(text) if w.lower() not in STOP}


def numbers(text: str) -> list[tuple[str, str]]:
    """The numbers of ``text``, each with the word after it.

    Number words become digits and thousands separators go; a unit's name is normalised ("ms" is "millisecond"),
    another word stemmed.
    """
    text = _WORD_NUMBER.sub(lambda m: _WORD_NUMBERS[m.group(1).lower()], text)
    out = []
    for match in _NUMBER.finditer(text):
        word = (match.group(2) or "").lower()
        out.append((match.group(1).replace(",", ""), UNITS.get(word) or stem(word)))
    return out


def names(sentence: str) -> set[str]:
    """Quoted strings, code identifiers and capitalised words past the first, as they are written."""
    found = {next(g for g in m.groups() if g) for m in _QUOTED.finditer(sentence)}
    found |= {m.group(1).rstrip(".:") for m in _CODE.finditer(sentence)}
    for match in _NAME.finditer(sentence):
        before = sentence[: match.start()].rstrip()
        word = match.group(1).rstrip(".:")
        # not a name: the sentence's (or a clause's) first word, or a common word capitalised
        if before and before[-1] not in ".!?-–—:;(\"'*" and word.lower() not in STOP and word != "I":
            found.add(word)
    return {n for n in found if len(n) > 1}


def negations(text: str) -> int:
    """How many times the text says "not", in any of its forms."""
    return len(NEGATION.findall(text))


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    terms: frozenset[str]
    source: int  # the source's number
    position: int


@dataclass(slots=True)
class _Evidence:
    """A source cut for checking: its units, its whole text in lower case, its title and heading."""

    units: list[_Unit]
    lower: str


class LocalVerifier:
    """Verifier and RelevanceGate over an embedder; thresholds measured by ``ragline eval verify``."""

    name = "local"

    def __init__(self, embedder: Embedder, *, vectors: QueryEmbeddingCache | None = None,
                 supported_similarity: float = 0.72, lexical_support: float = 0.8, gate_similarity: float = 0.42,
                 gate_coverage: float = 0.6, gate_enough_words: int = 5) -> None:
        self.embedder = embedder
        self.vectors = vectors or QueryEmbeddingCache(embedder, 4096)  # shared with the extractive answerer
        self.gate_coverage = gate_coverage
        self.gate_enough_words = gate_enough_words
        self.supported_similarity = supported_similarity
        self.lexical_support = lexical_support
        self.gate_similarity = gate_similarity
        self._evidence: OrderedDict[tuple[int, str], _Evidence] = OrderedDict()
        self._lock = threading.Lock()

    def describe(self) -> str:
        """It needs only the embedding model."""
        return f"offline; embeds with {self.embedder.name}"

    # -- evidence -------------------------------------------------------------------------------------------
    def evidence(self, source: Source) -> _Evidence:
        """The source cut into units (cached: the same sources serve every sentence of an answer)."""
        key = (source.number, source.excerpt)
        with self._lock:
            found = self._evidence.get(key)
        if found is not None:
            return found
        head = " ".join(x for x in (clean(source.title), clean(source.heading)) if x)
        # one unit per sentence: a table row or list item may hold several, and a claim rests on one of them
        pieces = [sentence for u in units(source.excerpt) for sentence in split_paragraph(u.text)]
        cut = [_Unit(text, frozenset(terms(text)), source.number, n) for n, text in enumerate(pieces)]
        if head:
            cut.append(_Unit(head, frozenset(terms(head)), source.number, -1))
        text = _WORD_NUMBER.sub(lambda m: _WORD_NUMBERS[m.group(1).lower()], f"{head}\n{clean(source.excerpt)}")
        found = _Evidence(cut, text.lower())
        with self._lock:
            self._evidence[key] = found
            while len(self._evidence) > 256:
                self._evidence.popitem(last=False)
        return found

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors for ``texts``, each embedded once while it stays in the (shared) cache."""
        return self.vectors.embed_many(texts)

    # -- the verifier -----------------------------------------------------------------------------------------
    def check(self, question: str, claim: str, cited: Sequence[Source]) -> tuple[str, str]:
        """Supported, or unsupported with the first reason found."""
        cited_label = ", ".join(f"[{s.number}]" for s in cited)
        pieces = [self.evidence(s) for s in cited]
        all_units = [u for p in pieces for u in p.units]
        words = terms(claim)
        if not words or not all_units:
            return ("supported", "") if not words else ("unsupported", f"{cited_label} has no text to check")
        ranked = sorted(all_units, key=lambda u: (-len(words & u.terms), u.source, u.position))
        best = ranked[0]
        best_share = len(words & best.terms) / len(words)
        window = self._window(ranked[:2], all_units)
        reason = self._hard_facts(claim, window, best, best_share, cited_label, all_units)
        if reason:
            return "unsupported", reason
        if best_share >= self.lexical_support:
            return "supported", ""
        closest = [u.text for u in ranked[:3]]
        vectors = self.embed([claim, *closest])
        similarity = float(np.max(vectors[1:] @ vectors[0]))
        if similarity >= self.supported_similarity or (similarity >= self.supported_similarity - 0.12 and
                                                         best_share >= 0.5):
            return "supported", ""
        return "unsupported", (f"{cited_label} does not say this: its closest sentence shares "
                               f"{best_share:.0%} of the words (similarity {similarity:.2f})")

    @staticmethod
    def _window(best: Sequence[_Unit], all_units: Sequence[_Unit]) -> str:
        """The text the claim rests on: its best units, their neighbours, and their sources' title and heading."""
        near = {(u.source, p) for u in best for p in (u.position - 1, u.position, u.position + 1, -1)}
        return "\n".join(u.text for u in all_units if (u.source, u.position) in near)

    @staticmethod
    def _hard_facts(claim: str, window: str, best: _Unit, best_share: float, cited_label: str,
                    all_units: Sequence[_Unit]) -> str:
        """The first number, name or negation of the claim that its sources contradict ("" when none)."""
        return (_number_mismatch(claim, window, best, best_share, cited_label)
                or _name_missing(claim, window, cited_label)
                or (_negation_mismatch(claim, best, cited_label, all_units) if best_share >= 0.5 else ""))

    # -- the relevance gate ------------------------------------------------------------------------------------
    def unanswerable(self, question: str, sources: Sequence[Source]) -> str:
        """Why the passages cannot answer the question ("" when they may)."""
        asked = {w for w in terms(question) if w not in _ASKING}
        pieces = [self.evidence(s) for s in sources]
        all_units = [u for p in pieces for u in p.units]
        if not all_units or not asked:
            return "" if all_units else "the passages found have no text"
        text = "\n".join(p.lower for p in pieces)
        squashed = _SQUASH.sub("", text)  # "GroundTruth" is "Ground Truth", "codepipeline" is "CodePipeline"
        missing = [n for n in names(question) if n.lower() not in _ASKING and not re.search(
            rf"(?<![\w]){re.escape(n.lower())}(?![\w])", text) and _SQUASH.sub("", n.lower()) not in squashed]
        if missing:
            return f"the passages found never mention {', '.join(sorted(missing))}"
        found = set().union(*(u.terms for u in all_units))
        # a share of the question's words, or enough of them: a long question's framing ("what trends", "the latest
        # quarter compared to past ones") need not be in the passages once five of its words are
        if len(asked & found) < min(self.gate_coverage * len(asked), self.gate_enough_words):
            unseen = {w for w in _WORD.findall(question) if stem(w) in asked - found}
            return f"the passages found never mention {', '.join(sorted(unseen, key=str.lower))}"
        ranked = sorted(all_units, key=lambda u: (-len(asked & u.terms), u.source, u.position))[:8]
        vectors = self.embed([question, *(u.text for u in ranked)])
        similarity = float(np.max(vectors[1:] @ vectors[0]))
        threshold = self.gate_similarity - (0.05 if question_kind(question) == "yes_no" else 0.0)
        if similarity < threshold:
            return f"no passage found is about this question (closest similarity {similarity:.2f})"
        return ""


def _number_mismatch(claim: str, window: str, best: _Unit, best_share: float, cited_label: str) -> str:
    """A number of the claim that the sources do not give, or give with another unit."""
    # a near copy of one sentence must have that sentence's numbers; a synthesis, those of its neighbourhood
    near_copy = best_share >= 0.8 and bool(numbers(best.text))
    said = numbers(best.text if near_copy else window)
    if near_copy:  # ... and say each as often as that sentence does
        extra = Counter(v for v, _ in numbers(claim)) - Counter(v for v, _ in said)
        if extra:
            return f"{cited_label} does not give the number {next(iter(extra))} there"
    said_values = {value for value, _ in said}
    units_said = {(v, u) for v, u in said if u in UNITS.values()}
    for value, unit in numbers(claim):
        if value not in said_values:
            return f"{cited_label} does not give the number {value}"
        if (value, unit) not in said and any(v == value for v, _ in units_said):
            other = next(u for v, u in sorted(units_said) if v == value)
            return f"{cited_label} says {value} {other}, not {value} {unit or 'without a unit'}"
    return ""


def _name_missing(claim: str, window: str, cited_label: str) -> str:
    """A quoted or code identifier, or a name, of the claim that the sources do not mention where it rests."""
    lower = _WORD_NUMBER.sub(lambda m: _WORD_NUMBERS[m.group(1).lower()], window).lower()
    window_terms = terms(window)
    for name in sorted(names(claim), key=len, reverse=True):
        if not re.search(rf"(?<![\w]){re.escape(name.lower())}(?![\w])", lower) and stem(name) not in window_terms:
            return f"{cited_label} does not mention \"{name}\" here"
    return ""


def _negation_mismatch(claim: str, best: _Unit, cited_label: str, all_units: Sequence[_Unit]) -> str:
    """Whether the claim denies what its sentence says, or affirms what it denies."""
    said_not = negations(best.text)
    if negations(claim) < said_not:
        return f"it affirms what {cited_label} denies: \"{best.text[:120]}\""
    unexplained = negations(claim) - said_not
    if unexplained <= 0:
        return ""
    # a claim may join two sentences of the source: a clause's "not" from the other sentence is no denial
    for clause in _CLAUSE.split(claim):
        clause_words = terms(clause)
        if len(clause_words) < 3 or not negations(clause):
            continue
        rests_on = max(all_units, key=lambda u: (len(clause_words & u.terms), -u.position))
        if rests_on is not best and len(clause_words & rests_on.terms) / len(clause_words) >= 0.5:
            unexplained -= min(negations(clause), negations(rests_on.text))
    return f"it denies what {cited_label} says: \"{best.text[:120]}\"" if unexplained > 0 else ""
