"""Deterministic fakes for unit tests of logic; they register like real providers (``fake``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np

from .types import Message, ModelEvent, Token, Usage, UsageEvent, Vectors

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Hashed bag of words: texts sharing words are close; no model, no download, same output every run."""

    name = "fake-bag-of-words"
    dimension = 64
    tokenizer = None

    def count_tokens(self, text: str) -> int:
        """Words in the text."""
        return len(_WORD.findall(text))

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """One normalised vector per text."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.clip(norms, 1e-12, None), dtype=np.float32)


class EchoChatModel:
    """Answers with the first sentence of source [1], cited; says "I don't know" without sources."""

    name = "echo"
    context_tokens = 4096

    def stream(self, messages: Sequence[Message], *, max_tokens: int) -> Iterator[ModelEvent]:
        """Yield the answer word by word."""
        match = re.search(r"^\[1\] [^\n]*\n([^\n]+)", messages[-1].content, re.MULTILINE)
        text = f"{match.group(1).split('. ')[0].rstrip('.')} [1]." if match else "I don't know."
        words = text.split(" ")[:max_tokens]
        for n, word in enumerate(words):
            yield Token(word if n == 0 else " " + word)
        yield UsageEvent(Usage(sum(len(m.content.split()) for m in messages), len(words)))
