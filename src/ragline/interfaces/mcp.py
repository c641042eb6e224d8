"""ragline over the Model Context Protocol (the official ``mcp`` SDK): tools for assistants, documents as resources.

- stdio, ``ragline mcp``: for an assistant on this machine (Claude Desktop, Claude Code, Cursor, VS Code), acting
  for the CLI's tenant (``RAGLINE_TENANT``), exactly as ``ragline ask`` does.
- Streamable HTTP at ``/mcp`` in ``ragline serve`` and the HTTP function: behind the same API-key or JWT auth as
  every route (a missing or wrong credential is 401 before the MCP session starts), and every call acts for the
  caller's tenant, so another tenant's key sees nothing of the first's documents.

Tools: ``search`` (passages with their sources), ``ask`` (the answer with its citations and a verdict for every
sentence), ``list_documents`` and ``get_document``. Resources: ``ragline://documents/{doc_id}``, a document's text
as ingested (its passages in reading order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ListResourcesResult, Resource, ToolAnnotations

from ragline.errors import NotFoundError, RaglineError
from ragline.interfaces.requests import QueryRequest
from ragline.interfaces.turns import Turns
from ragline.query.engine import collect

if TYPE_CHECKING:
    from ragline.compose import Ragline

MAX_PASSAGES = 2000  # of one document, for get_document and the resource
INSTRUCTIONS = (
    "ragline answers questions from the user's own documents and says which source supports each sentence. "
    "Use `ask` for a question that needs an answer; `search` to see the passages themselves (to quote them or "
    "to judge for yourself); `list_documents` to see what the knowledge base holds; `get_document` to read one."
)

TenantOf = Callable[[Mapping[str, str] | None], str]  # request headers (None on stdio) -> the caller's tenant


def _passage(n: int, hit: Any) -> dict[str, Any]:
    chunk = hit.chunk
    return {"n": n, "doc_id": chunk.doc_id, "title": chunk.title, "heading": chunk.heading, "page": chunk.page,
            "score": round(float(hit.score), 4), "text": chunk.text}


class RaglineMCP(MCPServer):
    """The SDK's server, listing each caller's own documents as resources (the list depends on who asks)."""

    def __init__(self, rag: Ragline, tenant_of: TenantOf) -> None:
        super().__init__("ragline", instructions=INSTRUCTIONS, version="0.1.0")
        self.rag, self.tenant_of = rag, tenant_of

    async def _handle_list_resources(self, ctx: Any, params: Any) -> ListResourcesResult:
        tenant = self.tenant_of(Context(request_context=ctx, mcp_server=self).headers)
        records = await anyio.to_thread.run_sync(self.rag.registry.list, tenant, "")
        return ListResourcesResult(resources=[
            Resource(uri=document_uri(r.doc_id), name=r.doc_id, title=r.title or r.doc_id, mime_type="text/plain",
                     description=f"{r.chunks} passages, {r.bytes:,} bytes")
            for r in records if r.status == "ready"])


def document_uri(doc_id: str) -> str:
    """The resource URI of a document."""
    return "ragline://documents/" + quote(doc_id, safe="/")


def build_server(rag: Ragline, tenant_of: TenantOf) -> RaglineMCP:
    """The MCP server over one Ragline; ``tenant_of`` names the caller from the request's headers."""
    from mcp.server.mcpserver.resources import ResourceSecurity

    server = RaglineMCP(rag, tenant_of)
    turns = Turns(rag)
    read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    def tenant(ctx: Context) -> str:
        try:
            return tenant_of(ctx.headers)
        except RaglineError as err:  # credentials revoked or expired since the session began
            raise ToolError(str(err)) from err

    async def run(fn: Callable[..., Any], *args: Any, error: type[Exception] = ToolError) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except RaglineError as err:  # the user's terms, not a traceback
            raise error(f"{type(err).__name__}: {err}") from err

    @server.tool(annotations=read_only)
    async def search(query: str, ctx: Context, k: int = 5, filters: dict[str, str] | None = None) -> dict[str, Any]:
        """Find the passages of the user's documents that best match a query (hybrid keyword and meaning search).

        Returns each passage's text with its document id, title, heading and page, best first. Use it to quote
        or inspect sources; use `ask` for an answer. `filters` narrows by `doc_id`, `source` (an id prefix such
        as a folder), `title`, `language` or a tag given at ingest, e.g. {"source": "handbook/"}.
        """
        engine = rag.for_tenant(tenant(ctx)).engine
        hits = await run(lambda: engine.retrieve(query, k=max(1, min(k, 50)), mode=rag.settings.retrieval,
                                                 filters=dict(filters or {})))
        return {"passages": [_passage(n, h) for n, h in enumerate(hits, start=1)]}

    @server.tool(annotations=read_only)
    async def ask(question: str, ctx: Context, conversation_id: str = "") -> dict[str, Any]:
        """Answer a question from the user's documents, with numbered citations ([1], [2]…) to the sources used.

        Every sentence of the answer is checked against the sources it cites: `sentences` gives each one's
        verdict (supported, unsupported, uncited, or remark) and `supported` the share of claims that hold.
        Prefer it to answering from memory when the question is about the user's organisation, products or
        documents. Pass the same `conversation_id` for a follow-up question.
        """
        who = tenant(ctx)
        answer = await run(lambda: collect(turns.answer(who, QueryRequest(question=question),
                                                        conversation=conversation_id)))
        data: dict[str, Any] = answer.as_dict()
        return {key: data[key] for key in ("answer", "sources", "sentences", "supported", "refused", "partial")
                if key in data}

    @server.tool(annotations=read_only)
    async def list_documents(ctx: Context, prefix: str = "") -> dict[str, Any]:
        """List the documents in the knowledge base: id, title, status, passages, size.

        `prefix` keeps those whose id starts with it (a folder, say).
        """
        records = await run(rag.registry.list, tenant(ctx), prefix)
        return {"documents": [r.as_dict() for r in records]}

    @server.tool(annotations=read_only)
    async def get_document(doc_id: str, ctx: Context) -> dict[str, Any]:
        """Read one document: its record (title, status, when ingested, any error) and its text as ingested."""
        found: dict[str, Any] = await run(_document, rag, tenant(ctx), doc_id)
        return found

    @server.resource("ragline://documents/{+doc_id}", mime_type="text/plain",
                     security=ResourceSecurity(exempt_params=frozenset({"doc_id"})))
    async def document(doc_id: str, ctx: Context) -> str:
        """A document's text as ingested: its passages in reading order, under their headings."""
        found = await run(_document, rag, tenant_of(ctx.headers), doc_id, error=ResourceError)
        return str(found["text"])

    return server


def _document(rag: Ragline, tenant: str, doc_id: str) -> dict[str, Any]:
    record = rag.registry.get(tenant, doc_id)
    if record is None:
        raise NotFoundError(f"no such document: {doc_id}")
    chunks = rag.store.passages({"tenant": tenant, "doc_id": doc_id}, MAX_PASSAGES)
    parts, heading, previous = [], "", ""
    for chunk in chunks:
        if chunk.heading and chunk.heading != heading:
            heading = chunk.heading
            parts.append(f"## {heading}")
        parts.append(chunk.text[_overlap(previous, chunk.text):].strip())
        previous = chunk.text
    return {**record.as_dict(), "text": "\n\n".join(p for p in parts if p)}


def _overlap(previous: str, text: str) -> int:
    """How many characters ``text`` repeats from the end of ``previous`` (chunks overlap by a few tokens)."""
    for size in range(min(len(previous), len(text), 1000), 20, -1):
        if previous.endswith(text[:size]):
            return size
    return 0
