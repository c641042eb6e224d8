"""A loopback OpenAI-compatible model that hallucinates on purpose, for the verification tests.

It answers by copying the first sentence of each of the first three sources in the prompt, cited, and corrupts
the ones named in ``corrupt`` (1-based) the way ``ragline eval verify`` does: a "not" inserted, else a number
changed, else the sentence cited to another source. The corrupted sentences are kept in ``corrupted`` so a test
can check that exactly those were flagged. The answer streams word by word, so verdicts can be seen arriving
while the answer is still being written.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence

from ragline.eval.verify import change_number, negate
from ragline.providers.local.sentences import units
from ragline.testing.fakes import LoopbackOpenAI, QuietHandler, QuietServer, begin_event_stream, send_event

_SOURCE = re.compile(r"^\[(\d+)\] [^\n]*\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: |\Z)", re.MULTILINE | re.DOTALL)


def hallucinated_answer(prompt: str, corrupt: Sequence[int]) -> tuple[str, list[str]]:
    """The answer to a ragline prompt, and the sentences of it that were corrupted."""
    sources = [(int(n), text) for n, text in _SOURCE.findall(prompt)]
    parts: list[str] = []
    corrupted: list[str] = []
    for position, (number, text) in enumerate(sources[:3], start=1):
        found = [u.text for u in units(text) if len(u.text.split()) >= 6 and u.text.endswith(".")]
        if not found:
            continue
        sentence, cite = found[0].rstrip("."), number
        if position in corrupt:
            changed = negate(sentence) or change_number(sentence, random.Random(number))
            if changed is None and len(sources) > 1:
                cite = next(n for n, _ in sources if n != number)  # true, but cited to another source
            sentence = changed or sentence
            corrupted.append(sentence)
        parts.append(f"{sentence} [{cite}].")
    return (" ".join(parts) or "I don't know."), corrupted


class HallucinatingOpenAIServer(LoopbackOpenAI):
    """``/v1/chat/completions`` (streamed) on 127.0.0.1; see the module's doc."""

    def __init__(self, corrupt: Sequence[int] = (2,), gap: float = 0.0) -> None:
        self.corrupt = tuple(corrupt)
        self.corrupted: list[str] = []
        owner = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                """Stream one corrupted answer."""
                body = self.read_json()
                prompt = str(body["messages"][-1]["content"])
                text, corrupted = hallucinated_answer(prompt, owner.corrupt)
                owner.corrupted.extend(corrupted)
                begin_event_stream(self)
                words = text.split(" ")
                for n, word in enumerate(words):
                    send_event(self, {"choices": [{"delta": {"content": word if n == 0 else " " + word}}]})
                    time.sleep(gap)
                send_event(self, {"choices": [], "usage": {"prompt_tokens": len(prompt.split()),
                                                           "completion_tokens": len(words)}})
                self.wfile.write(b"data: [DONE]\n\n")

        self._server = QuietServer(Handler)
