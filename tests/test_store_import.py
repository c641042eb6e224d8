"""Lean imports on the query path: the REST namespace client of lancedb loads when used, not when a local table
opens; httpx comes without its command-line client (rich, pygments)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from ragline.providers.local.lancedb import LanceStore
import numpy as np
store = LanceStore(sys.argv[1], 4)
assert store.count() == 0
assert not [m for m in sys.modules if m.startswith("lance_namespace_urllib3_client.api.")], "API loaded early"
import lance_namespace_urllib3_client as client
assert client.TableApi.__name__ == "TableApi" and client.ApiClient and client.__version__
from lancedb.namespace import LanceNamespaceDBConnection
print("ok")
"""


def test_the_namespace_client_loads_on_first_use(tmp_path: object) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


HTTPX_SCRIPT = """
import sys
import ragline.providers.openai
assert "httpx" in sys.modules and "httpx._main" not in sys.modules and "rich" not in sys.modules, "CLI loaded"
import httpx
assert httpx.Client and httpx.stream
import httpx._main  # still importable on purpose
assert callable(httpx._main.main)
print("ok")
"""


def test_httpx_comes_without_its_command_line_client() -> None:
    proc = subprocess.run([sys.executable, "-c", HTTPX_SCRIPT], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
