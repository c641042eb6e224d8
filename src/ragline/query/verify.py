"""Every sentence checked: the answer is cut into sentences as it streams, and each is judged as soon as it ends.

A sentence that cites sources is a claim for the ``Verifier`` (``seams.py``) to judge against those sources:
``supported`` or ``unsupported``, with a reason. A sentence without a marker is ``uncited``, unless it is not a
claim at all (a ``remark``: it declines, restates the question, answers "Yes."/"No." before the sentence that
decides it, or introduces a list). The ``Checker`` turns the model's tokens into ``Token`` and ``Verdict`` events
by the policy (``RAGLINE_VERIFY``):

* ``annotate`` (default): the text streams as the model writes it; a ``Verdict`` follows each sentence;
* ``drop``: each sentence is held until it is judged, and only supported ones and remarks are shown;
* ``refuse``: the whole answer is held; if fewer than ``threshold`` of its claims are supported, it is replaced by
  an honest "the sources do not support an answer", listing what was found;
* ``off``: no verdicts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from ragline.query.citations import MARKER, marker_numbers
from ragline.resilience import within
from ragline.seams import Verifier
from ragline.types import Deadline, Source, Token, Verdict

POLICIES = ("annotate", "drop", "refuse", "off")
NO_SOURCES = "I don't know: no documents match this question."
# Answers that decline: "I don't know", "the sources do not mention ...", "I cannot answer". Said of the sources or
# by the answerer, never of the product: "Amazon Lex does not support Y" is a claim, and is checked.
DECLINES = re.compile(
    r"\b(i (?:do not|don't|dont) know|no documents match"
    r"|(?:sources?|passages?|documents?|context|text)(?: found| provided| given)? (?:do|does) not "
    r"(?:contain|mention|provide|say|support|answer|include)"
    r"|i (?:cannot|can't|am unable to) (?:answer|find|determine)|not (?:enough|sufficient) information)\b",
    re.IGNORECASE,
)
# A sentence ends at . ! ? (closing quotes/brackets and [n] markers stay with it) before spaces and a capital,
# digit or opening quote; or at a line break. Both need the next character, so a sentence is judged once the next
# one has begun (or the answer ended).
_END = re.compile(r"[.!?][\"')*_`]*(?:[ \t]*\[\d+(?:\s*[,;\-–]\s*\d+)*\])*(?=([ \t]+)[A-Z0-9\"'(`*])|\n+(?=\S)")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|Fig|Inc|Corp|Mr|Ms|Dr)|\b[A-Z]|^\s*\d+)\.$")
_WORDS = re.compile(r"[A-Za-z0-9][\w'\-.]*[A-Za-z0-9]|[A-Za-z0-9]")
_FILLER = frozenset(("a", "an", "the", "is", "are", "do", "does", "can", "i", "you", "it", "of", "to", "in", "on",
                     "for", "and", "or", "what", "how", "which", "yes", "no", "this", "that", "with", "about"))


def sep_end_of(match: re.Match[str]) -> int:
    """Where the next sentence begins after a full-stop match."""
    return match.end() + len(match.group(1))


def split_sentences(text: str) -> list[tuple[str, str]]:
    """A finished text as (sentence, separator) pairs; joined back they are the text."""
    cutter = SentenceCutter()
    return [*cutter.feed(text), *cutter.end()]


class SentenceCutter:
    """Cuts streamed text into sentences: ``feed`` returns those that are complete, ``end`` the rest."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        """The sentences (with the whitespace after each) completed by this piece of text."""
        self.buffer += text
        out: list[tuple[str, str]] = []
        start = 0
        for match in _END.finditer(self.buffer):
            if match.group(0).startswith("\n"):
                end, sep_end = match.start(), match.end()
            else:
                end = match.end()
                piece = self.buffer[start:end].split("\n")[-1].split("[")[0].rstrip()
                numbered = piece.endswith(" No.") and self.buffer[sep_end_of(match)].isdigit()  # "No. 5"
                if _ABBREVIATION.search(piece) or numbered:
                    continue
                sep_end = sep_end_of(match)
            if self.buffer[start:end].strip():
                out.append((self.buffer[start:end], self.buffer[end:sep_end]))
            elif out:
                out[-1] = (out[-1][0], out[-1][1] + self.buffer[start:sep_end])
            start = sep_end
        self.buffer = self.buffer[start:]
        return out

    def end(self) -> list[tuple[str, str]]:
        """What is left once the text is complete."""
        rest, self.buffer = self.buffer, ""
        if not rest.strip():
            return []
        body = rest.rstrip()
        return [(body, rest[len(body):])]


def cited_numbers(sentence: str) -> list[int]:
    """The source numbers that a sentence's ``[n]`` markers name, first mention first."""
    return list(dict.fromkeys(n for m in MARKER.finditer(sentence) for n in marker_numbers(m.group(1))))


def plain(sentence: str) -> str:
    """The sentence without its markers, list bullets and Markdown emphasis, spaces collapsed."""
    text = MARKER.sub("", sentence)
    text = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", text)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(text.split()))


def remark(question: str, sentence: str) -> str:
    """Why the sentence is not a claim, or "" when it is one."""
    text = plain(sentence)
    if DECLINES.search(text):
        return "declines to answer"
    words = [w.lower() for w in _WORDS.findall(text)]
    if cited_numbers(sentence):
        return ""
    if text.endswith(":"):
        return "introduces what follows"
    if len(words) <= 2 and not any(c.isdigit() for c in text):
        return "not a claim"
    asked = {w.lower() for w in _WORDS.findall(question)}
    if words and words[0] not in ("yes", "no") and all(w in asked or w in _FILLER for w in words):
        return "restates the question"  # "Yes, it is available on M3" restates it too, but answers it: a claim
    return ""


def refusal(sources: Sequence[Source]) -> str:
    """The answer that replaces one its sources do not support: what was found, plainly."""
    if not sources:
        return NO_SOURCES
    found = "; ".join(f"\"{s.title or s.doc_id}\"" + (f" ({s.location})" if s.location else "") for s in sources[:5])
    return f"I don't know: the sources found do not support an answer to this question. What was found: {found}."


@dataclass(slots=True)
class Checker:
    """One answer's sentences judged as they complete, and the policy applied to what is shown."""

    verifier: Verifier | None
    question: str
    sources: Sequence[Source]
    policy: str = "annotate"
    threshold: float = 0.5
    verdicts: list[Verdict] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    seconds: float = 0.0
    refused: bool = False
    deadline: Deadline | None = None  # the answer's: a remote verifier's calls are bounded by it
    _cutter: SentenceCutter = field(default_factory=SentenceCutter)
    _held: list[tuple[str, Verdict]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Whether sentences are judged at all."""
        return self.policy != "off" and self.verifier is not None

    def feed(self, text: str) -> Iterator[Token | Verdict]:
        """Events for a piece of the model's text: the text (now or once judged) and the verdicts it completed."""
        if self.policy in ("annotate", "off") or not self.active:
            self.shown.append(text)
            yield Token(text)
        if self.active:
            for sentence, sep in self._cutter.feed(text):
                yield from self._judge(sentence, sep)

    def finish(self) -> Iterator[Token | Verdict]:
        """The last sentence's verdict and, for ``refuse``, the answer or what replaces it."""
        if not self.active:
            return
        for sentence, sep in self._cutter.end():
            yield from self._judge(sentence, sep)
        if self.policy == "refuse":
            claims = [v for v in self.verdicts if v.verdict != "remark"]
            share = sum(v.verdict == "supported" for v in claims) / len(claims) if claims else 1.0
            if share < self.threshold:
                self.refused = True
                self.verdicts = [replace(v, shown=False) for v in self.verdicts]
                self.shown = [refusal(self.sources)]
            yield Token("".join(self.shown))
        elif self.policy == "drop":
            if any(not v.shown for v in self.verdicts) and not any(
                    v.shown and v.verdict != "remark" for v in self.verdicts):  # every claim was dropped
                # its remarks go too: a "Yes." whose deciding sentence was dropped would mislead
                self.verdicts = [replace(v, shown=False) if v.verdict == "remark" else v for v in self.verdicts]
                yield from (replace(held, shown=False) for _, held in self._held)
                self._held.clear()
                self.refused = True
                self.shown = [refusal(self.sources)]
                yield Token(self.shown[0])
            else:
                yield from self._release()

    def _judge(self, sentence: str, sep: str) -> Iterator[Token | Verdict]:
        mark = time.perf_counter()
        verdict = self.judge(len(self.verdicts), sentence)
        self.seconds += time.perf_counter() - mark
        keep = self.policy != "drop" or verdict.verdict in ("supported", "remark")
        verdict = replace(verdict, shown=keep)
        self.verdicts.append(verdict)
        if self.policy == "drop" and verdict.verdict == "remark":
            self._held.append((sentence + sep, verdict))  # shown with the next supported claim, or not at all
            return
        if self.policy == "drop" and keep:
            yield from self._release()
            self.shown.append(sentence + sep)
            yield Token(sentence + sep)
        elif self.policy == "refuse":
            self.shown.append(sentence + sep)
        yield verdict

    def _release(self) -> Iterator[Token | Verdict]:
        """``drop``: the remarks held back, now that a supported claim follows them (or the answer is all remarks)."""
        for text, verdict in self._held:
            self.shown.append(text)
            yield Token(text)
            yield verdict
        self._held.clear()

    def judge(self, index: int, sentence: str) -> Verdict:
        """The verdict on one sentence of the answer."""
        assert self.verifier is not None
        text = sentence.strip()
        numbers = cited_numbers(sentence)
        why = remark(self.question, sentence)
        if why:
            return Verdict(index, text, "remark", tuple(numbers), why)
        if not numbers:
            return Verdict(index, text, "uncited", (), "cites no source")
        by_number = {s.number: s for s in self.sources}
        cited = [by_number[n] for n in numbers if n in by_number]
        if not cited:
            return Verdict(index, text, "unsupported", tuple(numbers), "cites only sources that were not retrieved")
        with within(self.deadline):
            verdict, reason = self.verifier.check(self.question, plain(sentence), cited)
        return Verdict(index, text, verdict, tuple(s.number for s in cited), reason)

    @property
    def text(self) -> str:
        """What the reader is shown."""
        return "".join(self.shown)
