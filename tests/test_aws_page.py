"""The web page as deployed on AWS, in headless Chromium: it reads its configuration from the HTTP function, signs
in through Cognito's hosted UI (the loopback stand-in over moto's user pool: authorization code with PKCE), uploads
a file straight to S3 (moto) with a presigned POST, follows its ingestion (SQS → the ingestion handler) to the end,
and asks over the API Gateway WebSocket (the loopback stand-in, the handler answering asynchronously) until the
answer cites the upload. Every function runs with the environment the template gives it."""

from __future__ import annotations

import json
import os
import threading

import boto3
import pytest

from ragline.compose import Ragline
from ragline.interfaces.aws import handlers
from ragline.interfaces.http import create_app
from ragline.settings import Settings
from ragline.testing.apigateway import WebSocketGateway
from ragline.testing.cognito import HostedUI
from ragline.testing.provision import load_template
from test_aws import TEMPLATE, drain_all
from test_web_page import ARTIFACTS

from conftest import serve

EMAIL, PASSWORD = "page@example.com", "Correct-Horse-42!"
NOTE = ("# Parking at the Lisbon office\n\n"
        "Visitors to the Lisbon office park in bay 42 on level -2; the gate code is given at reception.\n")


@pytest.fixture
def deployed_page(stack, moto_url, models, monkeypatch):
    """The HTTP function (uvicorn), the WebSocket API and the hosted UI, configured as the template says."""
    template = load_template(TEMPLATE)
    resources = template["Resources"]
    routes = [r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    idp = boto3.client("cognito-idp", endpoint_url=moto_url, region_name="us-east-1")
    pool = stack.refs["UserPool"]
    idp.admin_create_user(UserPoolId=pool, Username=EMAIL, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username=EMAIL, Password=PASSWORD, Permanent=True)
    with WebSocketGateway(handlers.websocket, routes, function_name=f"{stack.name}-websocket") as gateway, \
            HostedUI(idp, pool) as hosted:
        http_env = {**stack.environment(template, "HttpFunction"), **stack.environment(template, "WebSocketFunction")}
        endpoints = json.loads(os.environ["RAGLINE_AWS_ENDPOINTS"])
        for key, value in {
            **{k: v for k, v in http_env.items() if k.startswith("RAGLINE_") and k not in (
                "RAGLINE_HOME", "RAGLINE_TITAN_DIMENSION", "RAGLINE_JWT_JWKS")},
            "RAGLINE_PUBLIC_WEBSOCKET_URL": gateway.url,  # wss://API.execute-api…/prod on AWS
            "RAGLINE_COGNITO_DOMAIN": hosted.origin,  # https://PREFIX.auth.REGION.amazoncognito.com on AWS
            "RAGLINE_WEBSOCKET_ENDPOINT": gateway.management_endpoint,
            "RAGLINE_AWS_ENDPOINTS": json.dumps({**endpoints, "lambda": gateway.lambda_endpoint}),
        }.items():
            monkeypatch.setenv(key, value)
        assert os.environ["RAGLINE_WEBSOCKET_ANSWER"] == "async" and os.environ["RAGLINE_UPLOADS_BUCKET"]
        handlers._rag.cache_clear()
        url, stop = serve(create_app(Ragline(Settings())))
        page_client = next(c["ClientId"] for c in idp.list_user_pool_clients(UserPoolId=pool, MaxResults=60)[
            "UserPoolClients"] if c["ClientName"] == f"{stack.name}-page")
        idp.update_user_pool_client(  # what `sam deploy` sets: the callback is the page's own URL
            UserPoolId=pool, ClientId=page_client, CallbackURLs=[f"{url}/"], AllowedOAuthFlows=["code"],
            AllowedOAuthScopes=["openid", "email", "profile"], AllowedOAuthFlowsUserPoolClient=True,
            SupportedIdentityProviders=["COGNITO"])
        stopped = threading.Event()

        def ingest_function() -> None:  # SQS's event source mapping, polling
            while not stopped.wait(0.5):
                drain_all(stack, moto_url)

        worker = threading.Thread(target=ingest_function, daemon=True)
        worker.start()
        try:
            yield url, gateway, hosted
        finally:
            stopped.set()
            worker.join(timeout=30)
            stop()
    handlers._rag.cache_clear()


def test_the_page_signs_in_uploads_to_s3_and_gets_a_cited_answer_over_the_api_gateway_websocket(
        deployed_page, browser, tmp_path):
    url, gateway, hosted = deployed_page
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{hosted.origin}/login*")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/")
    page.locator("#who").wait_for(state="visible", timeout=15_000)
    assert "Signed in as" in page.locator("#who").inner_text() and hosted.sign_ins == [EMAIL]
    assert page.locator("#keylabel").is_hidden()

    note = tmp_path / "parking.md"
    note.write_text(NOTE, encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#files").set_input_files(str(note))
    page.locator(".job-done").wait_for(timeout=60_000)
    assert "parking.md ready" in page.locator(".job-done").inner_text()

    page.get_by_role("tab", name="Chat").click()
    page.get_by_placeholder("Ask a question").fill("Where do visitors park at the Lisbon office?")
    page.keyboard.press("Enter")
    answer = page.locator(".answer").first
    answer.locator("button.cite").first.wait_for(timeout=60_000)
    page.locator(".sources").first.wait_for(timeout=30_000)  # the done event arrived
    assert "bay 42" in answer.inner_text()
    answer.locator("button.cite").first.click()
    assert "parking.md" in page.locator("#excerpt").inner_text()
    page.screenshot(path=str(ARTIFACTS / "page-on-aws.png"))

    # API Gateway failing every post of the next answer: the page shows why, it does not wait for ever
    gateway.fault = lambda connection, data: (500, "InternalServerErrorException") if b'"token"' in data else None
    page.get_by_placeholder("Ask a question").fill("What is the gate code?")
    page.keyboard.press("Enter")
    failed = page.locator(".answer").nth(1).locator(".err")
    failed.wait_for(timeout=60_000)
    assert "could not be delivered" in failed.inner_text()
    assert errors == []
    assert [i for i in gateway.invocations if i.kind == "Event"], "the answer ran in an asynchronous invocation"
    assert gateway.timeouts == [] and gateway.overruns == []


def test_a_presigned_upload_is_pinned_to_the_callers_prefix_its_type_and_size(stack, moto_url, monkeypatch):
    """moto does not enforce a POST policy (it stores what is sent), so the policy document itself is checked; on
    AWS, S3 refuses a form that breaks it."""
    import base64

    import httpx

    from test_aws import sign_in

    template = load_template(TEMPLATE)
    stack.refs["WebSocketApi"] = "abc123"  # API Gateway's id, which moto does not emulate here
    for key, value in stack.environment(template, "HttpFunction").items():
        if key.startswith("RAGLINE_") and key not in ("RAGLINE_HOME", "RAGLINE_TITAN_DIMENSION", "RAGLINE_JWT_JWKS"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("RAGLINE_MAX_FILE_BYTES", "1000")
    token, tenant = sign_in(stack, moto_url)
    url, stop = serve(create_app(Ragline(Settings())))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        config = httpx.get(f"{url}/v1/config", timeout=30).json()  # no credential needed
        page_client = next(c["ClientId"] for c in boto3.client(
            "cognito-idp", endpoint_url=moto_url, region_name="us-east-1").list_user_pool_clients(
            UserPoolId=stack.refs["UserPool"], MaxResults=60)["UserPoolClients"] if c["ClientName"].endswith("-page"))
        assert config["cognito"]["client_id"] == page_client and config["uploads"] == "presigned"
        assert config["websocket_url"].startswith("wss://") and config["keepalive_seconds"] == 300

        grant = httpx.post(f"{url}/v1/uploads", headers=auth, json={"name": "../../someone-else/notes.md",
                                                                     "size": 10}, timeout=30).json()
        fields = grant["fields"]
        assert fields["key"] == f"uploads/{tenant}/notes.md" and grant["doc_id"] == "notes.md"
        policy = json.loads(base64.b64decode(fields["policy"]))
        conditions = policy["conditions"]
        assert {"bucket": stack.refs["DocumentsBucket"]} in conditions
        assert {"key": f"uploads/{tenant}/notes.md"} in conditions
        assert {"Content-Type": "text/markdown"} in conditions
        assert ["content-length-range", 1, 1000] in conditions
        assert grant["url"].startswith(moto_url)

        refused = {
            "size over the limit": ({"name": "big.pdf", "size": 5000}, 413, "TooLargeError"),
            "a type ragline cannot read": ({"name": "tool.exe", "size": 10}, 415, "UnsupportedTypeError"),
            "a size that is not a number": ({"name": "a.md", "size": "10"}, 422, "InputError"),
        }
        for what, (body, status, kind) in refused.items():
            reply = httpx.post(f"{url}/v1/uploads", headers=auth, json=body, timeout=30)
            assert (reply.status_code, reply.json()["error"]["type"]) == (status, kind), what
        assert httpx.post(f"{url}/v1/uploads", json={"name": "a.md", "size": 1}, timeout=30).status_code == 401
    finally:
        stop()
