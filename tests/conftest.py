from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragline import testing
from ragline.compose import Ragline
from ragline.providers.local.minilm import MiniLMEmbedder
from ragline.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
testing.register()  # the fakes are valid provider names, as in any project that tests with them


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The real embedding model, loaded once for the whole run."""
    embedder = MiniLMEmbedder()
    embedder.embed_batch(["warm up"])
    return embedder


@pytest.fixture
def make_app(tmp_path: Path, minilm: MiniLMEmbedder) -> Callable[..., Ragline]:
    """A Ragline on a temp folder sharing the session's real embedder."""

    def build(parts: dict[str, Any] | None = None, **overrides: Any) -> Ragline:
        """Settings from ``overrides``, with ready-made ``parts`` (a shared store, registry, ...)."""
        parts = dict(parts or {})
        overrides.setdefault("home", tmp_path / "home")
        overrides.setdefault("chat_model", "extractive")
        overrides.setdefault("cache", False)
        settings = Settings(**overrides)
        if settings.embedder == "minilm":
            parts.setdefault("embedder", minilm)
        return Ragline(settings, **parts)

    return build


STORES = ["lancedb", "opensearch-es", "opensearch-aoss"]
if os.environ.get("OPENSEARCH_URL"):
    STORES.append("opensearch-live")


@pytest.fixture(params=STORES)
def make_store_app(
    request: pytest.FixtureRequest, make_app: Callable[..., Ragline]
) -> Iterator[Callable[..., Ragline]]:
    """``make_app`` over each store the contract covers: LanceDB; OpenSearch as a managed domain and as Serverless
    (the loopback fake, SigV4-signed); and a real OpenSearch when ``OPENSEARCH_URL`` names one."""
    import uuid

    from ragline.testing.opensearch import FakeOpenSearch

    kind = request.param
    if kind == "lancedb":
        yield make_app
        return
    if kind == "opensearch-live":
        index = f"ragline-test-{uuid.uuid4().hex[:8]}"
        yield lambda **kw: make_app(store="opensearch", opensearch_url=os.environ["OPENSEARCH_URL"],
                                    opensearch_index=index, **kw)
        return
    request.getfixturevalue("aws_env")
    service = kind.split("-")[1]
    with FakeOpenSearch(service=service) as fake:
        yield lambda **kw: make_app(store="opensearch", opensearch_url=fake.url, opensearch_auth=service,
                                    aws_region="us-east-1", **kw)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RAGLINE_* from the developer's shell, and no ragline.toml from the working directory."""
    for key in list(os.environ):
        if key.startswith("RAGLINE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGLINE_CONFIG", str(tmp_path / "absent.toml"))


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode on a free loopback port, for the whole run (the real boto3 wire protocol)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and a region for boto3 (requests only ever go to loopback servers)."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def serve(app: Any) -> tuple[str, Any]:
    """Run an ASGI app on uvicorn on a free loopback port in a thread; returns (base URL, stop function)."""
    from ragline.testing.process import asgi_thread, free_port

    port = free_port()
    service = getattr(getattr(app, "state", None), "service", None)
    config = None
    if service is not None:  # ragline's app: the server as `ragline serve` configures it
        from ragline.interfaces.http.server import server_config

        config = server_config(app, service.settings, "127.0.0.1", port, log_level="warning")
    return asgi_thread(app, port, config)


def sse_post(url: str, body: dict[str, Any], timeout: float = 60) -> list[tuple[str | None, Any]]:
    """POST and read a Server-Sent Events answer: (event name, decoded data) pairs."""
    import json

    import httpx

    events: list[tuple[str | None, Any]] = []
    with httpx.stream("POST", url, json=body, timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama-cpp-python opens two /dev/null files at import and never closes them; close them after the run."""
    import sys

    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


def needs_tesseract() -> Any:
    """Skip where Tesseract is not installed, except in CI (``.ci/run`` installs it): there it must run."""
    import shutil

    missing = shutil.which("tesseract") is None and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason="Tesseract is not installed (apt install tesseract-ocr)")


AWS_TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "template.yaml"
AWS_REGION = "us-east-1"


@pytest.fixture
def models(aws_env):
    """The loopback Bedrock, Kendra and knowledge bases (``ragline.testing.aws``)."""
    from ragline.testing.aws import FakeAWSModels

    with FakeAWSModels() as fake:
        yield fake


@pytest.fixture
def stack(aws_env, moto_url, models, monkeypatch, tmp_path):
    """A fresh stack from the template; the process environment is what the template gives the functions."""
    import json
    import uuid

    from ragline.interfaces.aws import handlers
    from ragline.testing.provision import provision

    name = f"t{uuid.uuid4().hex[:8]}"
    stack, template = provision(moto_url, name=name, region=AWS_REGION, parameters={"IngestMaxReceiveCount": 2},
                                path=AWS_TEMPLATE)
    env = stack.environment(template)
    env.update({
        "RAGLINE_HOME": str(tmp_path / "home"),
        "RAGLINE_TITAN_DIMENSION": "256",
        "RAGLINE_AWS_ENDPOINT_URL": moto_url,
        "RAGLINE_AWS_ENDPOINTS": json.dumps({service: models.endpoint_url for service in (
            "bedrock-runtime", "bedrock-agent-runtime", "kendra", "textract")}),
        # moto serves each user pool's keys here; on AWS the template's cognito-idp URL does
        "RAGLINE_JWT_JWKS": f"{moto_url}/{stack.refs['UserPool']}/.well-known/jwks.json",
        "RAGLINE_WEBSOCKET_ENDPOINT": moto_url,
        "RAGLINE_WEBSOCKET_ANSWER": "inline",  # the handler alone; test_aws_deployed.py runs it as deployed
    })
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handlers._rag.cache_clear()
    yield stack
    handlers._rag.cache_clear()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (make dev does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()
