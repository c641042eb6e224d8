"""The ASGI app: query (JSON and SSE), OpenAI-compatible chat completions, documents, health and metrics.

Error mapping is owned here, once: each RaglineError kind has one HTTP status, and the body always says what
went wrong in the user's terms (``{"error": {"type", "message"}}``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import shutil
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException
from starlette.routing import Route

from ragline import errors
from ragline.compose import Ragline
from ragline.ingest.jobs import JobQueue
from ragline.interfaces.auth import Authenticator
from ragline.interfaces.http.budget import time_left
from ragline.interfaces.http.contract import (
    HTTP_KINDS,
    UPLOAD_BODY,
    allowed_methods,
    error_body,
    error_response,
    errors_for,
)
from ragline.interfaces.http.deployed import add_deployed_routes
from ragline.interfaces.http.limits import BodyLimit, receive_files
from ragline.interfaces.http.mcp_route import MCPRoute
from ragline.interfaces.http.metrics import CountRequests, Metrics
from ragline.interfaces.http.openai import completion, completion_chunks
from ragline.interfaces.http.pages import add_page_routes
from ragline.interfaces.http.websocket import add_websocket
from ragline.interfaces.requests import STRICT, QueryRequest, Tokens, query_for, unicode_text
from ragline.interfaces.turns import MODELS, Model, Turns
from ragline.interfaces.wire import sse_stream
from ragline.query.engine import collect
from ragline.settings import Settings
from ragline.types import Done, Event, Message

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ChatMessage(BaseModel):
    """One OpenAI chat message (text content, or a list of text parts)."""

    model_config = STRICT

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _content_is_text(cls, value: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]] | None:
        texts = [value] if isinstance(value, str) else [str(p.get("text", "")) for p in value or []]
        for text in texts:
            unicode_text(text, "messages[].content")
        return value

    def text(self) -> str:
        """The message's text."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""

class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions request that ragline honours (other fields are ignored)."""

    model_config = STRICT

    model: Model = Field(description="see GET /v1/models")
    # the question is the last user message: there must be one (JSON Schema's "contains" says so to clients)
    messages: list[ChatMessage] = Field(min_length=1, json_schema_extra={"contains": {
        "type": "object", "required": ["role", "content"],
        "properties": {"role": {"const": "user"}, "content": {"type": "string", "pattern": r"\S"}}}})
    stream: bool = False
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None

class Service:
    """The parts the routes share: the turn loop, settings, auth, the job queue, and metrics."""

    def __init__(self, rag: Ragline) -> None:
        self.rag = rag
        self.settings = rag.settings
        self.metrics = Metrics()
        self.auth = Authenticator(rag.settings, rag.registry)
        self.jobs = JobQueue(rag)
        self.turns = Turns(rag)

    def tenant(self, request: Request) -> str:
        """The caller's tenant (401 when credentials are missing or wrong)."""
        return self.auth.tenant(request.headers.get("authorization"), client=request.client.host if request.client
                                else "")

    def counted(self, events: Generator[Event, None, None]) -> Generator[Event, None, None]:
        """The events, with each finished answer's stage timings and cache outcome recorded."""
        try:
            for event in events:
                if isinstance(event, Done):
                    self.metrics.answer(event.answer)
                yield event
        finally:
            events.close()


def create_app(rag: Ragline | None = None) -> FastAPI:
    """Build the app over one Ragline (from the settings when not given)."""
    service = Service(rag or Ragline())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if app.state.mcp is not None:
                stack.push_async_callback(app.state.mcp.aclose)
            if not service.settings.uploads_bucket:  # on AWS, S3 notifications feed the ingestion function
                service.jobs.start()
                stack.callback(service.jobs.stop)
            yield

    app = FastAPI(title="ragline", version="0.1.0", lifespan=lifespan,
                  description="Answers from your own documents, with verified citations.")
    app.state.service = service
    app.state.mcp = None
    if service.settings.mcp:
        app.state.mcp = MCPRoute(service.rag, lambda header, client: service.auth.tenant(header, client=client),
                                 loopback_only=service.settings.auth == "none")
        app.router.routes.append(Route("/mcp", endpoint=app.state.mcp))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        service.metrics.error("InputError")
        return JSONResponse(error_body("InputError", errors.validation_message(err.errors())), 422)

    @app.exception_handler(errors.RaglineError)
    async def ragline_error(request: Request, err: errors.RaglineError) -> JSONResponse:
        service.metrics.error(type(err).__name__)
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        # Starlette's own refusals (unknown path, method not allowed, a body over its limit), in the same shape
        kind = HTTP_KINDS.get(err.status_code, "InputError" if err.status_code < 500 else "RaglineError")
        service.metrics.error(kind)
        headers = err.headers
        if err.status_code == 405:  # Starlette names only the first route's methods; a path may have several
            headers = {"Allow": ", ".join(allowed_methods(app, request.scope))}
        return JSONResponse(error_body(kind, str(err.detail)), err.status_code, headers=headers)

    app.add_middleware(BodyLimit, settings=service.settings)
    app.add_middleware(CountRequests, metrics=service.metrics)  # outermost: counts the 413s BodyLimit answers
    _add_query_routes(app, service)
    _add_document_routes(app, service)
    add_websocket(app, service)
    add_deployed_routes(app, service)
    add_page_routes(app, service)
    app.openapi = configured_openapi(app, service)  # type: ignore[method-assign]
    return app


def configured_openapi(app: FastAPI, service: Service) -> Callable[[], dict[str, Any]]:
    """``/openapi.json`` as this server is configured: a server whose model takes no images says so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            if not service.rag.responder.accepts_images:
                images = schema["components"]["schemas"]["QueryRequest"]["properties"]["images"]
                images.update(maxItems=0, description=f"none: this server's model ({service.settings.chat_model}) "
                                                      "does not take images")
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi

def _add_query_routes(app: FastAPI, service: Service) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        """The web page: chat with streamed answers and clickable citations; documents with uploads."""
        return HTMLResponse(_page())

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers (nothing about its insides: no paths, models or versions)."""
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus text format; with auth on, only for ``Authorization: Bearer $RAGLINE_METRICS_TOKEN``."""
        if service.settings.auth != "none":
            expected = service.settings.metrics_token
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
                raise errors.AuthError("/metrics needs 'Authorization: Bearer <RAGLINE_METRICS_TOKEN>' (it counts "
                                       "every tenant's requests, so a tenant's key is not enough)")
        service.metrics.tasks.set(len(asyncio.all_tasks()))
        service.metrics.queue.set(await anyio.to_thread.run_sync(service.rag.registry.jobs_waiting))
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.post("/v1/query", response_model=None, responses=errors_for(400, 413, 422, 502, 503, streams=True))
    def query(body: QueryRequest, request: Request) -> Any:
        """Answer a question: JSON, or Server-Sent Events with ``stream: true`` or ``Accept: text/event-stream``."""
        tenant = service.tenant(request)
        # refused here, before the stream, with a status code; on Lambda, the deadline fits the invocation's
        engine, q = service.turns.prepare(tenant, body, time_left=time_left(request.headers))
        events = service.counted(service.turns.stream(engine, q, tenant))
        if body.stream or "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(closing(sse_stream(events), request),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        return collect(events).as_dict()

    @app.get("/v1/models", responses=errors_for())
    def models(request: Request) -> dict[str, Any]:
        """The model names clients can ask for."""
        service.tenant(request)
        return {"object": "list",
                "data": [{"id": m, "object": "model", "created": 0, "owned_by": "ragline"} for m in MODELS]}

    @app.post("/v1/chat/completions", response_model=None,
               responses=errors_for(400, 413, 422, 502, 503, streams=True))
    def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """OpenAI-compatible: the last user message is the question, earlier turns are the history."""
        tenant = service.tenant(request)
        engine = service.turns.engine(body.model, tenant)
        turns = [m for m in body.messages if m.role in ("user", "assistant")]
        # the question is the last user message with text; what follows it (an assistant prefill) is dropped
        while turns and (turns[-1].role != "user" or not turns[-1].text().strip()):
            turns.pop()
        if not turns:
            raise errors.InputError("no question: the last message with role 'user' and some text is the question")
        history = tuple(Message(m.role, m.text()) for m in turns[:-1])  # type: ignore[arg-type]
        q = query_for(service.settings, QueryRequest(question=turns[-1].text() or " ",
                                                     max_tokens=body.max_completion_tokens or body.max_tokens),
                      history, time_left=time_left(request.headers))
        engine.check(q)
        events = service.counted(service.turns.stream(engine, q, tenant))
        if body.stream:
            return StreamingResponse(closing(completion_chunks(events, body.model), request),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        return completion(collect(events), body.model)

def _add_document_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/documents", status_code=202, openapi_extra=UPLOAD_BODY, responses=errors_for(413, 415, 422))
    async def upload(request: Request) -> dict[str, Any]:
        """Upload files (multipart, field ``files``); answers 202 with a job id; ingestion runs from the queue."""
        tenant = service.tenant(request)
        job_id, folder = service.jobs.staging()
        try:
            saved = await receive_files(request, folder, service.settings.max_file_bytes)
        except BaseException:  # refused, cut off or disconnected: nothing of it stays on disk
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if service.settings.uploads_bucket:
            await anyio.to_thread.run_sync(_to_bucket, service.settings, tenant, saved)
            shutil.rmtree(folder, ignore_errors=True)
            return {"status": "queued", "files": [f["name"] for f in saved],
                    "status_urls": [f"/v1/documents/{f['name']}" for f in saved]}
        service.jobs.submit(job_id, tenant, saved)
        return {"job_id": job_id, "status": "queued", "files": [f["name"] for f in saved],
                "status_url": f"/v1/jobs/{job_id}"}

    @app.get("/v1/jobs/{job_id}", responses=errors_for(404, 422))
    def job(job_id: str, request: Request) -> dict[str, Any]:
        """An ingestion job's status and progress (files, chunks, failures)."""
        found = service.rag.registry.job_get(service.tenant(request), job_id)
        if found is None:
            raise errors.NotFoundError(f"no such job: {job_id}")
        return {"job_id": job_id, "status": found["status"], "progress": json.loads(str(found["progress"])),
                "error": found["error"], "attempts": found["attempts"]}

    @app.post("/v1/jobs/{job_id}/retry", status_code=202, responses=errors_for(404, 422))
    def retry_job(job_id: str, request: Request) -> dict[str, Any]:
        """Queue a failed job again (its files were kept)."""
        if not service.rag.registry.job_retry(service.tenant(request), job_id):
            raise errors.NotFoundError(f"no failed job {job_id} to retry")
        service.jobs.wake()
        return {"job_id": job_id, "status": "queued"}

    @app.get("/v1/documents", responses=errors_for(422))
    def list_documents(request: Request, prefix: str = "") -> dict[str, Any]:
        """The tenant's documents with status, chunk count, size and ingestion time."""
        rows = service.rag.registry.list(service.tenant(request), prefix)
        return {"documents": [r.as_dict() for r in rows]}

    @app.get("/v1/documents/{doc_id:path}", responses=errors_for(404, 422))
    def get_document(doc_id: str, request: Request) -> dict[str, Any]:
        """One document's record."""
        record = service.rag.registry.get(service.tenant(request), doc_id)
        if record is None:
            raise errors.NotFoundError(f"no such document: {doc_id}")
        return record.as_dict()

    @app.delete("/v1/documents/{doc_id:path}", responses=errors_for(404, 422))
    def delete_document(doc_id: str, request: Request) -> dict[str, Any]:
        """Remove every chunk of a document and its record."""
        tenant = service.tenant(request)
        if not service.rag.for_tenant(tenant).ingestor.remove(doc_id):
            raise errors.NotFoundError(f"no such document: {doc_id}")
        if service.settings.uploads_bucket:  # or its notification would bring it back on the next redelivery
            _bucket(service.settings).delete_object(Bucket=service.settings.uploads_bucket,
                                                    Key=f"uploads/{tenant}/{doc_id}")
        return {"deleted": doc_id}

def _bucket(settings: Settings) -> Any:
    from ragline.providers.aws.clients import client

    return client("s3", settings.aws_region, settings.endpoint_for("s3"))


def _to_bucket(settings: Settings, tenant: str, saved: list[dict[str, Any]]) -> None:
    """Put saved uploads under ``uploads/TENANT/`` in the bucket; its notifications start the ingestion."""
    for f in saved:
        _bucket(settings).upload_file(f["path"], settings.uploads_bucket, f"uploads/{tenant}/{f['name']}")


async def closing(lines: Generator[str, None, None], request: Request) -> AsyncIterator[str]:
    """Run a blocking stream in worker threads and close it the moment the client goes away.

    The server does not fail a send to a client that has left, so the stream checks between events; closing the
    generator is what stops the model (llama.cpp stops decoding, an HTTP model's connection is closed).
    """
    done = object()
    try:
        while (line := await anyio.to_thread.run_sync(next, lines, done)) is not done:
            if await request.is_disconnected():
                break
            yield line  # type: ignore[misc]
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lines.close)

@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("ragline.interfaces.http").joinpath("static/index.html").read_text(encoding="utf-8")

