"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama-server), streamed over SSE."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from ragline.errors import ConfigError, ModelError, ModelUnavailableError
from ragline.providers.probe import one_token_reply
from ragline.types import Deadline, Message, ModelEvent, Token, Usage, UsageEvent


def _import_httpx_without_its_cli() -> None:
    """``import httpx`` without ``httpx._main``, its command-line client.

    httpx's ``__init__`` imports ``_main`` whenever rich, click and pygments are installed (ragline's ``ingest``
    extra brings rich), which costs 70-200 ms of a cold query for a CLI ragline never runs. With ``_main``
    marked absent during the import, httpx binds its own fallback ``main``; afterwards the mark is removed, so
    an explicit ``import httpx._main`` still works.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # a None entry makes the import fail fast
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]


_import_httpx_without_its_cli()
import httpx  # noqa: E402

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAIChatModel:
    """``POST {base_url}/chat/completions`` with ``stream: true``; the key is read from a named env var."""

    def __init__(
        self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0,
        temperature: float = 0.0, context_tokens: int = 8192, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.context_tokens = context_tokens
        self._api_key_env = api_key_env
        self._temperature = temperature
        self._read_timeout = timeout
        self._connect_timeout = min(timeout, 5.0)
        self._timeout = httpx.Timeout(timeout, connect=self._connect_timeout)
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """One pooled client for every call: keep-alive connections and one TLS context.

        Building the TLS context loads the CA bundle: about 30 ms, as much as the rest of a warm query.
        """
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, transport=self._transport)
            return self._client

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            self.close()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self._api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    accepts_images = False

    def describe(self) -> str:
        """A one-token request, as the first answer would make it."""
        return one_token_reply(self)

    def stream(
        self, messages: Sequence[Message], *, max_tokens: int, deadline: Deadline | None = None
    ) -> Generator[ModelEvent, None, None]:
        """Stream the reply; HTTP and network failures become ModelError / ModelUnavailableError.

        The read timeout never exceeds what is left of the deadline, so a stalled server cannot hold the caller
        past it.
        """
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": self._temperature,
            "stream_options": {"include_usage": True},
        }
        url = f"{self.base_url}/chat/completions"
        timeout = self._timeout
        if deadline is not None:
            left = max(deadline.remaining(), 0.001)
            timeout = httpx.Timeout(min(self._read_timeout, left), connect=min(self._connect_timeout, left))
        try:
            with self.client.stream("POST", url, json=body, headers=self._headers(), timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                yield from self._events(response.iter_lines())
        except httpx.TimeoutException as err:
            raise ModelUnavailableError(f"{url}: timed out ({type(err).__name__})") from err
        except httpx.TransportError as err:
            raise ModelUnavailableError(f"{url}: cannot connect ({err})") from err

    def _raise_for(self, response: httpx.Response) -> None:
        detail = response.text[:300]
        where = f"{self.base_url} answered {response.status_code}"
        if response.status_code in RETRYABLE_STATUS:
            raise ModelUnavailableError(f"{where} (throttled or unavailable): {detail}")
        if response.status_code == 404:
            raise ConfigError(f"{where}: model {self.name!r} not found there: {detail}")
        if response.status_code in (401, 403):
            raise ModelError(f"{where}: the API key in ${self._api_key_env} was refused")
        raise ModelError(f"{where}: {detail}")

    @staticmethod
    def _events(lines: Iterator[str]) -> Iterator[ModelEvent]:
        for line in lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                payload = json.loads(data)
            except json.JSONDecodeError as err:  # most often a connection cut in the middle of an event
                raise ModelUnavailableError(f"the stream was cut off or garbled: {data[:100]!r}") from err
            for choice in payload.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield Token(content)
            usage = payload.get("usage")
            if usage:
                yield UsageEvent(Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))))
        raise ModelUnavailableError("the stream ended without [DONE]: the connection was closed mid-answer")
