"""ragline: retrieval-augmented answers from your own documents, with verified citations.

Names are imported on first use, so ``import ragline`` (and ``ragline --help``) loads nothing heavy.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Ragline": "compose",
    "Engine": "query.engine",
    "Query": "query.engine",
    "RaglineError": "errors",
    "Settings": "settings",
    "Answer": "types",
    "Chunk": "types",
    "Citation": "types",
    "Done": "types",
    "ErrorEvent": "types",
    "Hit": "types",
    "Source": "types",
    "Sources": "types",
    "Token": "types",
    "UsageEvent": "types",
}
__all__ = [
    "Answer", "Chunk", "Citation", "Done", "Engine", "ErrorEvent", "Hit", "Query", "Ragline", "RaglineError",
    "Settings", "Source", "Sources", "Token", "UsageEvent",
]


def __getattr__(name: str) -> Any:
    """Import an exported name lazily."""
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ragline' has no attribute {name!r}")
