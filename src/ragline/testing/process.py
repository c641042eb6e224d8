"""Servers for tests and benchmarks: ``ragline serve`` in a process as a user runs it; an ASGI app in a thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def asgi_thread(app: Any, port: int | None = None,
                config: uvicorn.Config | None = None) -> tuple[str, Callable[[], None]]:
    """Run an ASGI app on uvicorn on loopback in a daemon thread: (base URL, stop function), once it listens."""
    import threading

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(config or uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


@contextmanager
def ragline_server(env: Mapping[str, str], *, log: IO[Any] | None = None,
                   wait: float = 60.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m ragline serve`` on a free loopback port: yields (base URL, process) once ``/healthz`` answers.

    ``env`` is added to this process's environment; the server is stopped on the way out.
    """
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ragline", "serve", "--port", str(port)],
                              env={**os.environ, **env}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"ragline serve did not start (exit code {server.poll()})") from None
                time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)
