"""``ragline serve`` as a user runs it, in a process of its own: for tests and benchmarks that need the real thing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
