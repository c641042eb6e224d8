"""The service commands: ``serve`` (HTTP, SSE, WebSocket, MCP at /mcp), ``mcp`` (stdio) and ``keys``."""

from __future__ import annotations

import click

from ragline.errors import ConfigError
from ragline.interfaces.cli_common import app_from, exit_on_error, settings_from


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--model", help="Generator: local, extractive or openai.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, model: str | None) -> None:
    """Serve the HTTP API (JSON, SSE, OpenAI-compatible); OpenAPI spec at /openapi.json."""
    from ragline.interfaces.http.server import run

    with exit_on_error():
        settings = settings_from(ctx, chat_model=model)
        if settings.auth == "none" and host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"auth=none serves only on loopback; set RAGLINE_AUTH=api_key or jwt to bind {host}")
        click.echo(f"ragline serving on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)", err=True)
        run(settings, host, port)


@click.group("keys")
def keys_group() -> None:
    """API keys for the HTTP service (RAGLINE_AUTH=api_key); each key belongs to one tenant."""


@keys_group.command("create")
@click.option("--tenant", "key_tenant", required=True, help="The tenant the key acts for.")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.pass_context
def keys_create(ctx: click.Context, key_tenant: str, name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from ragline.interfaces.auth import create_key

    with exit_on_error():
        key_id, key = create_key(app_from(ctx).registry, key_tenant, name)
        click.echo(f"id {key_id} for tenant {key_tenant}: {key}")
        click.echo("Store the key now: it cannot be shown again.", err=True)


@keys_group.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """List keys (id, tenant, name, created, revoked), never the keys themselves."""
    import datetime as dt

    with exit_on_error():
        for key_id, key_tenant, name, created, revoked in app_from(ctx).registry.key_list():
            when = dt.datetime.fromtimestamp(created).isoformat(timespec="seconds")
            state = "revoked" if revoked else "active"
            click.echo(f"{key_id}  {state:7}  {key_tenant}  {when}  {name}")


@keys_group.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    from ragline.errors import NotFoundError

    with exit_on_error():
        if not app_from(ctx).registry.key_revoke(key_id):
            raise NotFoundError(f"no active key with id {key_id}")
        click.echo(f"revoked {key_id}")


@click.command("mcp")
@click.pass_context
def mcp_command(ctx: click.Context) -> None:
    """Serve the Model Context Protocol over stdio, for an assistant on this machine (acts for RAGLINE_TENANT).

    Tools: search, ask, list_documents, get_document; resources: the documents. Over HTTP, `ragline serve`
    answers MCP at /mcp behind the service's auth.
    """
    from ragline.interfaces.mcp import build_server

    with exit_on_error():
        rag = app_from(ctx)
        build_server(rag, lambda headers: rag.settings.tenant).run("stdio")
