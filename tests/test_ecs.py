"""ECS on Fargate (``deploy/ecs.yaml``): the HTTP image as a long-running service beside a deployed serverless stack.

What is proven here: the container's entry point serves outside Lambda (no adapter) on the host and port the task
definition gives it, with the task definition's environment resolved against a stack provisioned on moto, answers a
signed-in user from that stack's index and streams Server-Sent Events; the task role grants what the HTTP function
is granted and no more. Not proven: the load balancer itself (its idle timeout, health checks and TLS are declared,
cfn-lint and checkov check them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ragline.testing.process import free_port
from ragline.testing.provision import Stack, load_template
from test_aws import FIXTURES, QUESTION, aws, drain_all, sign_in, unprovisioned

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def ecs_stack(serverless, parameters=None):
    """deploy/ecs.yaml's stack, its parameters taken from the serverless stack's outputs as the README says."""
    template = load_template(DEPLOY / "ecs.yaml")
    stack = Stack.of(template, name="ragline-ecs", parameters={
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ragline:http", "VpcId": "vpc-1",
        "DocumentsBucket": serverless.refs["DocumentsBucket"], "TableName": serverless.refs["Table"],
        "UserPoolId": serverless.refs["UserPool"], "UserPoolClientId": serverless.refs["UserPoolClient"],
        **(parameters or {})})
    stack.arns.update(ExecutionRole="arn:aws:iam::123456789012:role/exec",
                      TaskRole="arn:aws:iam::123456789012:role/task")
    stack.refs.update(Logs="ragline-ecs-logs")
    return stack, template


def container(stack, template):
    definition = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    return stack.resolve(definition)


def test_the_task_role_is_the_http_functions_least_privilege(stack):
    ecs, template = ecs_stack(stack)
    role = ecs.resolve(template["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
    serverless = load_template(DEPLOY / "template.yaml")
    same = unprovisioned(serverless, {})
    same.refs.update(Table=stack.refs["Table"])
    same.arns.update(Table=f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.refs['Table']}")
    same.name = stack.name
    function = same.resolve(serverless["Resources"]["HttpFunction"]["Properties"]["Policies"][0]["Statement"])
    by_sid = {s["Sid"]: s for s in function if s}
    assert {s["Sid"] for s in role} == {"ReadIndex", "Upload", "Registry", "Models", "QueryEmbeddings"}
    for statement in role:
        theirs = by_sid[statement["Sid"]]
        assert statement["Resource"] == theirs["Resource"], statement["Sid"]
        assert set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]) <= set(
            theirs["Action"] if isinstance(theirs["Action"], list) else [theirs["Action"]]), statement["Sid"]
    definition = container(ecs, template)
    assert definition["User"] == "1000" and definition["ReadonlyRootFilesystem"] is True
    assert "/healthz" in definition["HealthCheck"]["Command"][-1]
    assert template["Resources"]["TargetGroup"]["Properties"]["HealthCheckPath"] == "/healthz"


def test_the_http_image_serves_as_an_ecs_task_and_streams_an_answer(stack, moto_url, models, tmp_path):
    """The container's command, with the task definition's environment, answering from the serverless stack."""
    token, sub = sign_in(stack, moto_url)
    aws("s3", moto_url).put_object(Bucket=stack.refs["DocumentsBucket"], Key=f"uploads/{sub}/sample.pdf",
                                   Body=(FIXTURES / "pdf" / "sample_pdf_1.pdf").read_bytes())
    drain_all(stack, moto_url)  # the serverless stack's ingestion function
    ecs, template = ecs_stack(stack)
    env = {e["Name"]: str(e["Value"]) for e in container(ecs, template)["Environment"]}
    assert env["HOST"] == "0.0.0.0" and env["RAGLINE_INDEX_URI"] == f"s3://{stack.refs['DocumentsBucket']}/index"
    port = free_port()
    env.update({  # the test's loopback stand-ins for the AWS endpoints, and a loopback address for 0.0.0.0
        "HOST": "127.0.0.2", "PORT": str(port), "RAGLINE_HOME": str(tmp_path / "home"),
        "RAGLINE_AWS_ENDPOINT_URL": moto_url, "RAGLINE_TITAN_DIMENSION": "256",
        "RAGLINE_AWS_ENDPOINTS": json.dumps({"bedrock-runtime": models.endpoint_url}),
        "RAGLINE_JWT_JWKS": f"{moto_url}/{stack.refs['UserPool']}/.well-known/jwks.json"})
    keep = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    server = subprocess.Popen([sys.executable, "-m", "ragline.interfaces.aws.http"], env={**keep, **env})
    url = f"http://127.0.0.2:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the container did not become healthy"
            time.sleep(0.3)
        events = []
        with httpx.stream("POST", f"{url}/v1/query", json={"question": QUESTION, "stream": True},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60) as reply:
            assert reply.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "sources" and "token" in kinds and kinds[-1] == "done"
        assert events[-1]["answer"]["citations"][0]["doc_id"] == "sample.pdf"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(("certificate", "listeners"), [
    ("", {"PlainListener"}),
    ("arn:aws:acm:us-east-1:123456789012:certificate/abc", {"HttpsListener", "HttpListener"}),
])
def test_https_when_a_certificate_is_given(stack, certificate, listeners):
    ecs, template = ecs_stack(stack, {"CertificateArn": certificate})
    created = set(ecs.resources(template))
    assert {n for n in created if n.endswith("Listener")} == listeners
