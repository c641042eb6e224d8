"""``ragline doctor``: which part is configured for what, and whether each one answers.

Every check uses the call the part makes when it serves (a Retrieve of one result, a one-token answer, a count),
so it needs no permission beyond the ones the service already has, and a failure names the same error a user
would meet. Parts the configuration does not use are listed as such, not checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ragline.compose import Ragline
from ragline.errors import RaglineError
from ragline.types import ChatModel, Message, OneCallAnswerer, Token


@dataclass(slots=True)
class Check:
    """One part: what is configured, and what checking it found."""

    part: str
    configured: str
    status: str = "ok"  # ok, failed, unused
    detail: str = ""
    ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _run(check: Check, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        check.detail = probe()
    except Exception as err:  # any failure is the finding: reported, not raised
        check.status = "failed"
        check.detail = str(err) if isinstance(err, RaglineError) else f"{type(err).__name__}: {err}"
    check.ms = round((time.perf_counter() - started) * 1000, 1)
    return check


def _store_label(app: Ragline) -> str:
    s = app.settings
    if s.store == "opensearch":
        return f"opensearch {s.opensearch_url} index {s.opensearch_index}"
    return f"lancedb {s.index_dir}"


def _probe_store(app: Ragline) -> str:
    store = app.store
    info = getattr(store, "info", None)
    if info is not None:
        state = info()
        if not state["exists"]:
            return f"reachable (auth {state['auth']}); the index is created at the first ingest"
        return f"{state['chunks']:,} chunks, {state['dimension']} dimensions (auth {state['auth']})"
    return f"{store.count({'tenant': app.settings.tenant}):,} chunks for tenant {app.settings.tenant}"


def _probe_retriever(app: Ragline) -> str:
    retriever = app.retriever
    assert retriever is not None
    hits = retriever.retrieve("ragline doctor", k=1, filters={}, tenant=app.settings.tenant)
    return f"answered Retrieve ({len(hits)} result{'s' if len(hits) != 1 else ''})"


def _probe_chat(app: Ragline) -> str:
    generator = app.generator
    chain = getattr(generator, "chain", None)
    model = chain[0] if chain else generator
    if isinstance(model, OneCallAnswerer):
        from ragline.providers.aws.knowledge_base import KnowledgeBaseRetriever
        from ragline.providers.chat import knowledge_base_options

        s = app.settings
        kb = KnowledgeBaseRetriever(s.knowledge_base_id or "", **knowledge_base_options(s))
        kb.retrieve("ragline doctor", k=1, filters={}, tenant=s.tenant)
        return "the knowledge base answers Retrieve; its model is first called by the first question"
    if not isinstance(model, ChatModel):
        return "needs no model"
    path = getattr(model, "path", None)
    if path is not None:  # a local GGUF: the file is what can be missing; loading it is the first answer's job
        if not path.is_file():
            raise RaglineError(f"GGUF model file not found: {path}")
        return f"{path} ({path.stat().st_size / 1e6:.0f} MB)"
    text = "".join(e.text for e in model.stream([Message("user", "Say OK.")], max_tokens=1)
                   if isinstance(e, Token))
    return f"answered a one-token request ({text.strip()!r})"


def _probe_bucket(app: Ragline) -> str:
    from ragline.providers.aws.clients import client

    s = app.settings
    client("s3", s.aws_region, s.endpoint_for("s3"), s.request_timeout).head_bucket(Bucket=s.uploads_bucket)
    return "reachable"


def checks(app: Ragline) -> list[Check]:
    """Check every part the settings use; unused ones are listed as unused."""
    s = app.settings
    one_call = s.chat_model == "knowledge-base"
    own_store = s.retriever == "store" and not one_call
    registry = f"sqlite {s.registry_path}" if s.registry == "sqlite" else f"dynamodb {s.dynamodb_table}"
    out = [
        _run(Check("embedder", s.embedder),
             lambda: f"{app.embedder.name}, {len(app.embedder.embed_batch(['ragline doctor'])[0])} dimensions"),
        _run(Check("registry", registry),
             lambda: f"index version {app.registry.index_version(s.tenant)} for tenant {s.tenant}"),
    ]
    store = Check("store", _store_label(app))
    out.append(_run(store, lambda: _probe_store(app)) if own_store else _unused(store, "answers come from elsewhere"))
    retriever = Check("retriever", s.retriever + {"kendra": f" index {s.kendra_index_id}",
                                                  "knowledge-base": f" {s.knowledge_base_id}"}.get(s.retriever, ""))
    if s.retriever == "store":
        out.append(_unused(retriever, "ragline's own hybrid search over the store"))
    elif one_call:
        out.append(_unused(retriever, "the knowledge-base answerer retrieves for itself"))
    else:
        out.append(_run(retriever, lambda: _probe_retriever(app)))
    model = {"bedrock": f"bedrock {s.bedrock_model_id}", "openai": f"openai {s.openai_model}",
             "knowledge-base": f"knowledge-base {s.knowledge_base_id} with {s.bedrock_model_id}"}
    out.append(_run(Check("chat model", model.get(s.chat_model, s.chat_model)), lambda: _probe_chat(app)))
    bucket = Check("uploads", f"s3://{s.uploads_bucket}" if s.uploads_bucket else "local (HOME)")
    out.append(_run(bucket, lambda: _probe_bucket(app)) if s.uploads_bucket else _unused(bucket, "uploads stay local"))
    return out


def _unused(check: Check, why: str) -> Check:
    check.status, check.detail = "unused", why
    return check


def render(results: list[Check]) -> str:
    """The table the command prints."""
    marks = {"ok": "✓", "failed": "✗", "unused": "–"}
    width = max(len(c.configured) for c in results)
    lines = []
    for c in results:
        timing = f"  ({c.ms:.0f} ms)" if c.status != "unused" else ""
        lines.append(f"{marks[c.status]} {c.part:<10} {c.configured:<{width}}  {c.detail}{timing}")
    failed = sum(c.status == "failed" for c in results)
    lines.append(f"{failed} part{'s' if failed != 1 else ''} failed" if failed else "every configured part answers")
    return "\n".join(lines)
