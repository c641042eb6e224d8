"""The API's own contract: the one error body, and every status each route declares in ``/openapi.json``.

Each ``RaglineError`` kind has one status (``STATUS``); Starlette's own refusals (an unknown path, a method a
route does not take, a body over its limit) are rewritten into the same ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from ragline import errors

STATUS: list[tuple[type[errors.RaglineError], int]] = [
    (errors.RateLimitedError, 429),
    (errors.AuthError, 401),
    (errors.TooLargeError, 413),
    (errors.InputError, 422),
    (errors.UnsupportedTypeError, 415),
    (errors.ParseError, 422),
    (errors.ConfigError, 400),
    (errors.NotFoundError, 404),
    (errors.ModelUnavailableError, 503),
    (errors.ModelError, 502),
    (errors.StoreError, 500),
]
# Starlette's HTTPExceptions, named as the error kind a client would handle them as.
HTTP_KINDS = {404: "NotFoundError", 405: "InputError", 413: "TooLargeError", 400: "InputError"}


class ErrorDetail(BaseModel):
    """What went wrong, in the user's terms."""

    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: ErrorDetail


WHY = {
    400: "A setting or name the request relies on cannot work (for example an unknown model)",
    401: "Missing, revoked, expired or forged credentials",
    404: "No such document or job for this tenant",
    413: "The body, an upload or one of its files is over its size limit",
    415: "A file type ragline cannot read",
    422: "The request is not valid: which field, and why",
    429: "Too many failed sign-ins from this address; retry after the Retry-After seconds",
    502: "The model failed",
    503: "The model endpoint could not be reached, was throttled, or timed out",
}


def errors_for(*codes: int, streams: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can answer (auth ones are always included).

    A route that ``streams`` also answers 200 as Server-Sent Events (with ``stream: true`` or the Accept header).
    """
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": WHY[code]} for code in sorted({401, 429, *codes})}
    if streams:
        event = {"type": "object", "required": ["data"],  # one Server-Sent Event: its name and its JSON data
                 "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}
        responses[200] = {"description": "The answer as JSON, or as Server-Sent Events when streamed",
                          "content": {"text/event-stream": {"schema": event}}}
    return responses


def status_for(err: errors.RaglineError) -> int:
    """The HTTP status of an error."""
    return next((code for kind, code in STATUS if isinstance(err, kind)), 500)


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The documented error body."""
    return {"error": {"type": kind, "message": message}}


def error_response(err: errors.RaglineError) -> JSONResponse:
    """The HTTP response for an error: its status, the documented body, and ``Retry-After`` when throttled."""
    headers = {"Retry-After": str(err.retry_after)} if isinstance(err, errors.RateLimitedError) else None
    return JSONResponse(error_body(type(err).__name__, str(err)), status_for(err), headers=headers)


# What each readable file is sent as; the file's name decides how it is read (README: "Using it").
UPLOAD_TYPES = ("text/plain", "text/markdown", "text/html", "text/csv", "application/pdf",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/jsonl",
                "application/gzip", "image/png", "image/jpeg", "image/tiff", "image/webp")
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["files"],
            "properties": {"files": {"type": "array", "minItems": 1,
                                     "items": {"type": "string", "format": "binary"}}},
        }, "encoding": {"files": {"contentType": ", ".join(UPLOAD_TYPES)}}}},
    }
}


def allowed_methods(app: Any, scope: Any) -> list[str]:
    """Every method some route takes at this request's path (for a 405's ``Allow``)."""
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)
