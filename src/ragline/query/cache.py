"""The answer cache: an in-process LRU in front of the registry's table (SQLite here, DynamoDB on AWS).

The key hashes everything that could change the answer: the normalised question, filters, k, retrieval mode,
tenant, model, prompt version and the tenant's index version. Every ingest or delete bumps the index version,
so an answer computed from an older index is never served.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ragline.query.prompts import PROMPT_VERSION
from ragline.seams import AnswerStore

_SPACE = re.compile(r"\s+")


def normalise(question: str) -> str:
    """Case, spacing and trailing punctuation do not make a different question."""
    return _SPACE.sub(" ", question).strip().rstrip("?!. ").casefold()


class AnswerCache:
    """Cached answers (as JSON-ready dicts) with a TTL."""

    def __init__(
        self, registry: AnswerStore, *, ttl: float = 86400.0, size: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._memory: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(
        self, *, question: str, filters: Mapping[str, str], k: int, mode: str, tenant: str, model: str,
        retriever: str = "",
    ) -> str:
        """The cache key of one question under the current index version."""
        parts = {
            "q": normalise(question),
            "filters": sorted(filters.items()),
            "k": k,
            "mode": mode,
            "tenant": tenant,
            "model": model,
            "retriever": retriever,  # what retrieves and how it fuses: another fusion is another answer
            "prompt": PROMPT_VERSION,
            "index": self.registry.index_version(tenant),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached answer, or None (counted as a miss)."""
        now = self.clock()
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None and entry[0] > now:
                self._memory.move_to_end(key)
                self.hits += 1
                return entry[1]
        raw = self.registry.answer_get(key, now)
        if raw is None:
            with self._lock:
                self.misses += 1
            return None
        value: dict[str, Any] = json.loads(raw)
        self._remember(key, now + self.ttl, value)
        with self._lock:
            self.hits += 1
        return value

    def put(self, key: str, tenant: str, value: dict[str, Any]) -> None:
        """Store an answer for the TTL."""
        expires = self.clock() + self.ttl
        self.registry.answer_put(key, tenant, json.dumps(value), expires)
        self._remember(key, expires, value)

    def _remember(self, key: str, expires: float, value: dict[str, Any]) -> None:
        with self._lock:
            self._memory[key] = (expires, value)
            self._memory.move_to_end(key)
            while len(self._memory) > self.size:
                self._memory.popitem(last=False)

    def clear(self, tenant: str | None = None) -> int:
        """Drop cached answers; returns how many were stored."""
        with self._lock:
            self._memory.clear()
        return self.registry.answer_clear(tenant)

    def stats(self) -> dict[str, int]:
        """Entries stored (live and expired) and this process's hits and misses."""
        live, expired = self.registry.answer_count(self.clock())
        return {"entries": live, "expired": expired, "hits": self.hits, "misses": self.misses}
