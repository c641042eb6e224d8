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


def _describe_store(app: Ragline) -> Callable[[], str]:
    def probe() -> str:
        return app.store.describe()

    return probe


def _describe_responder(app: Ragline) -> Callable[[], str]:
    def probe() -> str:
        return app.responder.describe()

    return probe


def _probe_retriever(app: Ragline) -> str:
    hits = app.retriever.retrieve("ragline doctor", k=1, mode=app.settings.retrieval, filters={},
                                  tenant=app.settings.tenant)
    return f"answered Retrieve ({len(hits)} result{'s' if len(hits) != 1 else ''})"


def _probe_verifier(app: Ragline) -> str:
    from ragline.types import Source

    verifier = app.verifier
    assert verifier is not None  # RAGLINE_VERIFY is not off here
    source = Source(1, "doctor", "ragline doctor", "", None, 0.0, "ragline doctor checks every part.")
    verdict, _ = verifier.check("What does ragline doctor check?", "ragline doctor checks every part.", [source])
    return f"{verifier.describe()}; a copied sentence is {verdict}"


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
    out.append(_run(store, _describe_store(app)) if own_store else _unused(store, "answers come from elsewhere"))
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
    out.append(_run(Check("chat model", model.get(s.chat_model, s.chat_model)), _describe_responder(app)))
    verifier = Check("verifier", "off" if s.verify == "off" else f"{s.verifier} ({s.verify})")
    out.append(_run(verifier, lambda: _probe_verifier(app)) if s.verify != "off" else _unused(
        verifier, "sentences are not checked (RAGLINE_VERIFY=off)"))
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
