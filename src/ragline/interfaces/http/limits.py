"""Limits the HTTP service enforces while a request arrives, not after: body sizes, and files streamed to disk.

``BodyLimit`` is ASGI middleware: a declared ``Content-Length`` over the limit is refused before the body is
read, and a body that passes the limit while it streams (``Transfer-Encoding: chunked`` declares nothing) is cut
off at that chunk with 413. ``receive_files`` parses a multipart upload as it arrives (python-multipart, the
parser Starlette itself uses) and writes each file straight into the job's staging folder, so nothing is
buffered or spooled to another place first, and a file is refused the moment it passes its own limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import anyio
from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragline import errors
from ragline.ingest.jobs import safe_name
from ragline.ingest.parsing import SUPPORTED
from ragline.ingest.pipeline import human_size
from ragline.settings import Settings

UPLOAD_PATH = "/v1/documents"


def too_large(what: str, limit: int, setting: str) -> HTTPException:
    """The 413 for a body over its limit (an HTTPException passes FastAPI's body parsing unchanged)."""
    return HTTPException(413, f"{what} is over the {human_size(limit)} limit ({setting})")


class BodyLimit:
    """Refuse request bodies over the limit as they stream: uploads by one limit, every other body by another."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its body counted as it is received."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and scope["path"] == UPLOAD_PATH
        limit = self.settings.max_upload_bytes if upload else self.settings.max_body_bytes
        setting = "RAGLINE_MAX_UPLOAD_BYTES" if upload else "RAGLINE_MAX_BODY_BYTES"
        what = "the upload" if upload else "the request body"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, too_large(f"{what} ({human_size(int(declared))})", limit, setting))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(what, limit, setting)
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, err: HTTPException) -> None:
    body = json.dumps({"error": {"type": "TooLargeError", "message": err.detail}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class _Files:
    """python-multipart callbacks that write the parts of field ``files`` into a folder, one open file at a time."""

    def __init__(self, folder: Path, file_limit: int) -> None:
        self.folder, self.file_limit = folder, file_limit
        self.saved: list[dict[str, Any]] = []
        self.headers: dict[bytes, bytes] = {}
        self.field = self.value = b""
        self.out: IO[bytes] | None = None
        self.current: dict[str, Any] = {}

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.headers, self.field, self.value = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"files" or b"filename" not in options:
            return  # another form field: ignored
        name = readable_name(options[b"filename"].decode("utf-8", "replace"))
        if any(f["name"] == name for f in self.saved):
            raise errors.InputError(f"{name}: the same file name twice in one upload")
        path = self.folder / name
        self.current = {"name": name, "path": str(path), "size": 0}
        self.out = path.open("wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.out is None:
            return
        self.current["size"] += end - start
        if self.current["size"] > self.file_limit:
            raise errors.TooLargeError(f"{self.current['name']} is over the {human_size(self.file_limit)} limit "
                                       "per file (RAGLINE_MAX_FILE_BYTES)")
        self.out.write(data[start:end])

    def _end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
            self.saved.append(self.current)

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def readable_name(raw: str) -> str:
    """An upload's file name made safe, if ragline can read a file of that name (else 415 with the reason)."""
    name = safe_name(raw)
    suffix = next((s for s in SUPPORTED if name.lower().endswith(s)), None)
    if suffix is None:
        raise errors.UnsupportedTypeError(f"{name}: unsupported file type; supported: {', '.join(SUPPORTED)}")
    if not name[: -len(suffix)].strip(". _"):
        raise errors.UnsupportedTypeError(f"{raw!r}: a file name needs a base name before its extension")
    return name


async def receive_files(request: Request, folder: Path, file_limit: int) -> list[dict[str, Any]]:
    """Stream a multipart upload's ``files`` into ``folder``: ``[{"name", "path", "size"}]`` in upload order."""
    from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise errors.InputError("send the files as multipart/form-data in the field 'files'")
    files = _Files(folder, file_limit)
    parser = MultipartParser(options[b"boundary"], files.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            await anyio.to_thread.run_sync(parser.write, chunk)
        parser.finalize()
        if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
            raise errors.InputError("the upload ended before its closing boundary (it was cut short)")
    except ValueError as err:  # python-multipart's own errors (MultipartParseError is a ValueError)
        raise errors.InputError(f"the upload is not valid multipart/form-data ({err})") from err
    finally:
        files.close()
    if not files.saved:
        raise errors.InputError("no files in the upload: send them in the multipart field 'files'")
    return files.saved
