"""The extractive answerer: no language model; it answers with the sources' own sentences, each cited.

The passages are cut into units by ``sentences.py`` (sentences, list items, steps, table rows, with Markdown
removed). Each unit is scored by its embedding similarity to the question plus the share of the question's content
words it contains; then the kind of question decides the shape of the answer:

* "what is/are X": the definition ("X is ...") first, and the sentence after it;
* "how many/much/long", a maximum, a limit, a size: the best unit that holds a number;
* "how do I ...": the steps (or items) around the best one, in their order;
* yes/no ("is", "can", "does", ...): "Yes." or "No.", led by the sentence that decides it (it says "No" when
  that sentence negates what the question asks and the question does not);
* anything else: the best two units.

No unit is repeated; the answer keeps the sources' order. Deterministic: the same sources and question always give
the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from ragline.providers.local.sentences import Unit, split_paragraph, units
from ragline.query.retrieval import QueryEmbeddingCache
from ragline.seams import Embedder
from ragline.types import Deadline, Query, ResponseEvent, Source, Sources, Token

NO_ANSWER = "I don't know: the sources do not answer this question."
_WORD = re.compile(r"[a-z0-9][a-z0-9\-_.]*[a-z0-9]|[a-z0-9]")
STOP = frozenset(
    [
        "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "can", "could",
        "should", "would", "will", "shall", "may", "might", "must", "i", "you", "we", "they", "it", "its", "this",
        "that", "these", "those", "of", "to", "in", "on", "for", "with", "by", "from", "at", "as", "and", "or",
        "not", "no", "how", "what", "which", "who", "whom", "whose", "when", "where", "why", "there", "here", "my",
        "your", "our", "their", "me", "us", "them", "if", "then", "than", "so", "such", "into", "about", "over",
        "under", "have", "has", "had", "any", "all", "some", "more", "most", "other", "also", "just", "only",
        "very", "using", "use", "used",
    ])
_YES_NO = ("is", "are", "can", "could", "does", "do", "did", "should", "will", "would", "was", "were", "has", "have",
           "may", "must", "am")
_NEGATION = re.compile(r"\b(not|no|never|cannot|can't|don't|doesn't|isn't|aren't|won't|wasn't|weren't|"
                       r"shouldn't|couldn't|unsupported|unable|none)\b|n't\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_QUANTITY = re.compile(r"^(how (many|much|long|large|big|often|old|far)|what is the (max|min|default|limit|size|"
                       r"number|length|total|price|cost|quota)|what('s| is) the \w+ (limit|size|length|number))")
_HOW_TO = re.compile(r"^(how (do|can|should|would) (i|you|we)|how to|what are the steps|what steps)")
_DEFINITION = re.compile(r"^(what('s| is| are)|define|explain what)\b")


@dataclass(frozen=True, slots=True)
class _Candidate:
    source: int  # index in the sources
    unit: Unit
    number: int  # the source's number, for the [n] marker


def content_words(text: str) -> set[str]:
    """The words of ``text`` that carry meaning (lower case, no stop words)."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOP}


def question_kind(question: str) -> str:
    """``yes_no``, ``quantity``, ``how_to``, ``definition`` or ``other``."""
    q = " ".join(question.lower().split())
    if _QUANTITY.match(q):
        return "quantity"
    if _HOW_TO.match(q):
        return "how_to"
    if _DEFINITION.match(q):
        return "definition"
    if q.split(" ", 1)[0] in _YES_NO:
        return "yes_no"
    return "other"


class ExtractiveAnswerer:
    """A Responder that answers with cited units of the sources, shaped by the kind of question."""

    name = "extractive"
    accepts_images = False
    retrieves = False

    def __init__(self, embedder: Embedder, max_units: int = 2, min_similarity: float = 0.3,
                 max_steps: int = 6, max_embedded: int = 48, vectors: QueryEmbeddingCache | None = None) -> None:
        self.embedder = embedder
        self.vectors = vectors or QueryEmbeddingCache(embedder, 0)  # shared with the verifier: no text twice
        self.max_embedded = max_embedded
        self.max_units = max_units
        self.min_similarity = min_similarity
        self.max_steps = max_steps

    def describe(self) -> str:
        """Nothing to reach: it needs no model beyond the embedder."""
        return "needs no model"

    def close(self) -> None:
        """Nothing to free."""

    def respond(self, query: Query, sources: Sequence[Source], *, tenant: str,
                deadline: Deadline | None) -> Generator[ResponseEvent, None, None]:
        """The sources, then the answer as one token."""
        yield Sources(list(sources))
        yield Token(self.answer(query.question, sources))

    def answer(self, question: str, sources: Sequence[Source]) -> str:
        """The cited answer text."""
        candidates = [_Candidate(i, u, s.number) for i, s in enumerate(sources) for u in units(s.excerpt)]
        if not candidates:
            return NO_ANSWER
        scores = self._scores(question, candidates)
        order = sorted(range(len(candidates)), key=lambda i: (-round(float(scores[i]), 6), i))
        if scores[order[0]] < self.min_similarity:
            return NO_ANSWER
        kind = question_kind(question)
        chosen = self._choose(kind, question, candidates, scores, order)
        text = self._render(chosen)
        if kind == "yes_no":
            return f"{self._verdict(question, chosen[0].unit.text)} {text}"
        return text

    def _scores(self, question: str, candidates: list[_Candidate]) -> np.ndarray:
        asked = content_words(question)
        overlap = np.array([len(asked & content_words(c.unit.text)) / max(len(asked), 1) for c in candidates])
        # Long tables make hundreds of units: only the ones sharing most words with the question, and each
        # source's opening units, are embedded (a unit sharing no word rarely answers); the rest score nothing.
        embedded = sorted(range(len(candidates)), key=lambda i: (-overlap[i], i))[: self.max_embedded]
        embedded = sorted(set(embedded) | {i for i, c in enumerate(candidates) if c.unit.position < 3})
        vectors = self.vectors.embed_many([question, *(candidates[i].unit.text for i in embedded)])
        similarity = np.full(len(candidates), -1.0)
        similarity[embedded] = vectors[1:] @ vectors[0]
        # earlier sources rank higher: retrieval already judged them
        rank = np.array([0.02 * c.source for c in candidates])
        return np.asarray(similarity + 0.3 * overlap - rank, dtype=np.float64)

    def _choose(self, kind: str, question: str, candidates: list[_Candidate], scores: np.ndarray,
                order: list[int]) -> list[_Candidate]:
        best = candidates[order[0]]
        if kind == "quantity":
            numbered = [i for i in order[:8] if _NUMBER.search(candidates[i].unit.text)]
            return [candidates[numbered[0] if numbered else order[0]]]
        if kind == "how_to" and best.unit.kind in ("step", "item"):
            return self._steps(candidates, order[0])
        if kind == "definition":
            subject = self._subject(question)
            defining = [i for i in order[:6] if subject and re.match(
                rf"^(an? |the )?{re.escape(subject)}\b.{{0,60}}\b(is|are|was|lets|enables|provides)\b",
                candidates[i].unit.text, re.IGNORECASE)]
            first = candidates[defining[0] if defining else order[0]]
            following = [c for c in candidates if c.source == first.source
                         and c.unit.paragraph == first.unit.paragraph and c.unit.position == first.unit.position + 1]
            return [first, *following[:1]]
        if kind == "yes_no":
            return [best]
        picked = [best]
        best_words = content_words(best.unit.text)
        for i in order[1:]:
            if len(picked) == self.max_units or scores[i] < self.min_similarity:
                break
            if content_words(candidates[i].unit.text) != best_words:
                picked.append(candidates[i])
        return picked

    def _steps(self, candidates: list[_Candidate], at: int) -> list[_Candidate]:
        """The run of steps (or items) of one list around the best one, in order."""
        best = candidates[at]
        run = [best]
        i = at - 1
        while i >= 0 and candidates[i].source == best.source and candidates[i].unit.kind == best.unit.kind:
            run.insert(0, candidates[i])
            i -= 1
        i = at + 1
        while i < len(candidates) and candidates[i].source == best.source and (
                candidates[i].unit.kind == best.unit.kind):
            run.append(candidates[i])
            i += 1
        return run[: self.max_steps]

    @staticmethod
    def _subject(question: str) -> str:
        """What a definition question asks about: "What is Amazon Lex?" → "Amazon Lex"."""
        match = re.match(r"^\s*(?:what(?:'s| is| are)|define|explain what)\s+(?:an? |the )?(.+?)[?.!\s]*$",
                         question, re.IGNORECASE)
        return match.group(1).strip() if match else ""

    @staticmethod
    def _verdict(question: str, sentence: str) -> str:
        """Yes, or No when the deciding sentence negates what is asked and the question does not.

        A negation decides only in a sentence about what is asked, one holding at least half of the question's
        words: "AWS does not apply any semantic meaning to your tags" does not answer "Does AMI support tags?".
        """
        asked = {w.rstrip("s") for w in content_words(question)}
        said = {w.rstrip("s") for w in content_words(sentence)}
        about = not asked or len(asked & said) / len(asked) >= 0.5
        negated = bool(_NEGATION.search(sentence)) and not _NEGATION.search(question) and about
        return "No." if negated else "Yes."

    @staticmethod
    def _render(chosen: list[_Candidate]) -> str:
        ordered = sorted(dict.fromkeys(chosen), key=lambda c: (c.source, c.unit.position))
        parts = []
        for c in ordered:
            for sentence in split_paragraph(c.unit.text):  # a list item or row may hold several: each is cited
                text = sentence.rstrip()
                end = text[-1] if text[-1] in ".!?:" else ""
                body = text[:-1].rstrip() if end else text
                parts.append(f"{body} [{c.number}]{'.' if end in ('', ':') else end}")
        return " ".join(parts)
