"""The MCP server, driven by the official SDK's own client over both transports (issue 19, item 1).

Streamable HTTP at /mcp on the real app (uvicorn, API keys on): tools, resources, and another tenant's key seeing
nothing of the first tenant's documents. stdio: ``ragline mcp`` launched as a subprocess, as Claude Desktop or
Claude Code launches it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.auth import create_key
from ragline.interfaces.http import create_app

from conftest import serve, write

LEX = ("# Amazon Lex\n\nAmazon Lex is an AWS service for building conversational interfaces for applications "
       "using voice and text.\n\n## Limits\n\nA bot can have up to 250 intents.\n")


@pytest.fixture(scope="module")
def service(tmp_path_factory, minilm) -> Iterator[tuple[str, str, str]]:
    """(URL, acme's key, another tenant's key); acme has the Lex guide."""
    from ragline.compose import Ragline
    from ragline.settings import Settings

    home = tmp_path_factory.mktemp("mcp")
    app = Ragline(Settings(home=home / "home", chat_model="extractive", auth="api_key", cache=False,
                           tenant="acme"), embedder=minilm)
    write(home / "kb", "lex.md", LEX)
    app.ingestor.run(source_items(expand_paths([str(home / "kb")])))
    _, acme = create_key(app.registry, "acme")
    _, other = create_key(app.registry, "other")
    url, stop = serve(create_app(app))
    yield url, acme, other
    stop()


@asynccontextmanager
async def _client(url: str, key: str) -> AsyncIterator[Client]:
    """The SDK's client over Streamable HTTP, sending the key as an MCP client configured with a header does."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http, \
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        yield client


def _data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


def test_tools_and_resources_over_streamable_http(service) -> None:
    url, acme, _ = service

    async def talk() -> dict[str, Any]:
        async with _client(url, acme) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            found = _data(await client.call_tool("search", {"query": "How many intents can a bot have?", "k": 3}))
            answer = _data(await client.call_tool("ask", {"question": "What is Amazon Lex?"}))
            listed = _data(await client.call_tool("list_documents", {}))
            resources = (await client.list_resources()).resources
            text = (await client.read_resource(resources[0].uri)).contents[0].text
            document = _data(await client.call_tool("get_document", {"doc_id": listed["documents"][0]["doc_id"]}))
            missing = await client.call_tool("get_document", {"doc_id": "nope.md"})
            return {"tools": tools, "found": found, "answer": answer, "listed": listed, "resources": resources,
                    "text": text, "document": document, "missing": missing}

    got = asyncio.run(talk())
    assert set(got["tools"]) == {"search", "ask", "list_documents", "get_document"}
    assert all(t.annotations.read_only_hint for t in got["tools"].values())
    assert "verdict" in got["tools"]["ask"].description  # written for a model to choose well
    assert "250 intents" in got["found"]["passages"][0]["text"]
    assert got["found"]["passages"][0]["doc_id"].endswith("lex.md")
    answer = got["answer"]
    assert "conversational interfaces" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["sources"][0]["doc_id"].endswith("lex.md")
    assert answer["sentences"] and all(s["verdict"] in ("supported", "remark") for s in answer["sentences"])
    assert [d["doc_id"] for d in got["listed"]["documents"]] == [got["found"]["passages"][0]["doc_id"]]
    assert len(got["resources"]) == 1 and str(got["resources"][0].uri).startswith("ragline://documents/")
    assert "Amazon Lex is an AWS service" in got["text"] and "250 intents" in got["text"]
    assert got["document"]["text"] == got["text"] and got["document"]["status"] == "ready"
    assert got["missing"].is_error and "no such document: nope.md" in got["missing"].content[0].text


def test_another_tenants_key_sees_nothing_and_no_key_is_refused(service) -> None:
    url, acme, other = service

    async def talk() -> dict[str, Any]:
        async with _client(url, acme) as client:
            uri = (await client.list_resources()).resources[0].uri
            doc_id = _data(await client.call_tool("list_documents", {}))["documents"][0]["doc_id"]
        async with _client(url, other) as client:
            return {
                "search": _data(await client.call_tool("search", {"query": "Amazon Lex intents"})),
                "ask": _data(await client.call_tool("ask", {"question": "What is Amazon Lex?"})),
                "listed": _data(await client.call_tool("list_documents", {})),
                "resources": (await client.list_resources()).resources,
                "get": await client.call_tool("get_document", {"doc_id": doc_id}),
                "read": await _read_or_error(client, uri),
            }

    got = asyncio.run(talk())
    assert got["search"] == {"passages": []} and got["listed"] == {"documents": []} and got["resources"] == []
    assert got["ask"]["sources"] == [] and "Lex is an AWS service" not in got["ask"]["answer"]
    assert got["get"].is_error and "no such document" in got["get"].content[0].text
    assert "no such document" in got["read"]
    for headers in ({}, {"authorization": "Bearer rl_wrong"}):
        r = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       headers={**headers, "accept": "application/json, text/event-stream"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "AuthError"


async def _read_or_error(client: Client, uri: Any) -> str:
    try:
        result = await client.read_resource(uri)
    except Exception as err:  # the SDK raises the server's error for a resource it could not read
        return str(err)
    return json.dumps([c.model_dump() for c in result.contents])


def test_ragline_mcp_over_stdio(tmp_path, minilm) -> None:
    """What an assistant on the user's machine launches: ``ragline mcp``, acting for the CLI's tenant."""
    from ragline.compose import Ragline
    from ragline.settings import Settings

    app = Ragline(Settings(home=tmp_path / "home", chat_model="extractive", cache=False), embedder=minilm)
    write(tmp_path / "kb", "lex.md", LEX)
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    env = {**os.environ, "RAGLINE_HOME": str(tmp_path / "home"), "RAGLINE_CHAT_MODEL": "extractive"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "ragline", "mcp"], env=env)

    async def talk() -> tuple[list[str], dict[str, Any]]:
        async with Client(params) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            return tools, _data(await client.call_tool("ask", {"question": "How many intents can a bot have?"}))

    tools, answer = asyncio.run(talk())
    assert sorted(tools) == ["ask", "get_document", "list_documents", "search"]
    assert "250" in answer["answer"] and answer["sources"][0]["doc_id"].endswith("lex.md")
