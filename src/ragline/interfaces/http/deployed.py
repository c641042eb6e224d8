"""What the page needs to work where it is deployed: its configuration, and uploads straight to S3.

``GET /v1/config`` (public) tells the page where to connect and how to sign in: the WebSocket (this server's
``/v1/ws``, or the API Gateway WebSocket with ``{"action": "ping"}`` keep-alives), Cognito's hosted UI (domain and
app client, for the authorization code flow with PKCE) and how uploads go (``direct``: multipart to
``/v1/documents``; ``presigned``: ``POST /v1/uploads`` then straight to S3, past Lambda's 6 MB request limit).

``POST /v1/uploads`` answers a presigned POST whose policy pins the object key to ``uploads/TENANT/NAME`` (the
caller's tenant, a readable name), its ``Content-Type`` to the one for that name, and its size to at most
``RAGLINE_MAX_FILE_BYTES``; S3 refuses anything else. The bucket's notification then ingests it, and the page
follows ``GET /v1/documents/NAME`` until it is ready or failed.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from ragline import errors
from ragline.interfaces.http.contract import errors_for
from ragline.interfaces.http.limits import readable_name

if TYPE_CHECKING:
    from ragline.interfaces.http.app import Service
    from ragline.settings import Settings

KEEPALIVE_SECONDS = 300  # API Gateway closes a WebSocket after 10 idle minutes
PRESIGNED_SECONDS = 900
TYPES = {".md": "text/markdown", ".jsonl": "application/jsonl", ".jsonl.gz": "application/gzip",
         ".csv": "text/csv", ".webp": "image/webp"}


class UploadRequest(BaseModel):
    """A file the page is about to upload to S3."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=1)


def add_deployed_routes(app: FastAPI, service: Service) -> None:
    """Mount ``/v1/config`` and ``/v1/uploads``."""

    @app.get("/v1/config", responses=errors_for())
    def config() -> dict[str, Any]:
        """Where the page connects, how it signs in and uploads (no credential needed)."""
        return page_config(service.settings)

    @app.post("/v1/uploads", responses=errors_for(400, 413, 415, 422))
    def presign(body: UploadRequest, request: Request) -> dict[str, Any]:
        """A presigned POST for one file to ``uploads/TENANT/NAME`` in the bucket (deployments with one)."""
        tenant = service.tenant(request)
        return presigned_upload(service.settings, tenant, body)


def page_config(settings: Settings) -> dict[str, Any]:
    """The page's configuration from the settings."""
    cognito = None
    if settings.cognito_domain:
        cognito = {"domain": settings.cognito_domain.rstrip("/"), "client_id": _client_id(settings)}
    return {
        "auth": settings.auth,
        "websocket_url": settings.public_websocket_url,
        "keepalive_seconds": KEEPALIVE_SECONDS if settings.public_websocket_url else None,
        "cognito": cognito,
        "uploads": "presigned" if settings.uploads_bucket else "direct",
    }


def _client_id(settings: Settings) -> str:
    if settings.cognito_client_id:
        return settings.cognito_client_id
    if not (settings.cognito_client_name and settings.jwt_issuer):
        raise errors.ConfigError("RAGLINE_COGNITO_DOMAIN needs RAGLINE_COGNITO_CLIENT_ID (or _CLIENT_NAME with "
                                 "RAGLINE_JWT_ISSUER, the user pool's URL)")
    from ragline.providers.aws.cognito import app_client_id, pool_of

    return app_client_id(pool_of(settings.jwt_issuer), settings.cognito_client_name, settings.aws_region,
                         settings.endpoint_for("cognito-idp"))


def presigned_upload(settings: Settings, tenant: str, body: UploadRequest) -> dict[str, Any]:
    """The presigned POST (url and form fields) for one file, and where to follow its ingestion."""
    if not settings.uploads_bucket:
        raise errors.InputError("this server takes uploads itself: POST the files to /v1/documents")
    name = readable_name(body.name)
    limit = min(settings.max_file_bytes, settings.max_upload_bytes)
    if body.size > limit:
        raise errors.TooLargeError(f"{name}: {body.size} bytes is over the limit of {limit} "
                                   "(RAGLINE_MAX_FILE_BYTES)")
    suffix = ".jsonl.gz" if name.lower().endswith(".jsonl.gz") else "." + name.rsplit(".", 1)[-1].lower()
    content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    key = f"uploads/{tenant}/{name}"
    post = _s3(settings).generate_presigned_post(
        Bucket=settings.uploads_bucket, Key=key, Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, limit]],
        ExpiresIn=PRESIGNED_SECONDS)
    return {"url": post["url"], "fields": post["fields"], "doc_id": name, "max_bytes": limit,
            "status_url": f"/v1/documents/{name}", "expires_in": PRESIGNED_SECONDS}


def _s3(settings: Settings) -> Any:
    return _signing_client(settings.aws_region, settings.endpoint_for("s3"))


@lru_cache(maxsize=4)
def _signing_client(region: str | None, endpoint: str | None) -> Any:
    """An S3 client for signing, built once (~50 ms); path-style addressing when an endpoint is set (moto)."""
    import boto3
    from botocore.config import Config

    config = Config(signature_version="s3v4", s3={"addressing_style": "path"} if endpoint else {})
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint, config=config)
