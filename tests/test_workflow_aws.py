"""Exported workflows deployed and executed: the template ``ragline workflow template`` writes (linted, its tables
created from it), each example's state machine run to the end by moto's Step Functions interpreter, with DynamoDB
and S3 on moto and the Bedrock calls answered by the loopback Bedrock (``ragline.testing.stepfunctions`` says why
the relay needs a shim)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from ragline.settings import Settings
from ragline.testing.fakes import FaultyOpenAIServer
from ragline.testing.stepfunctions import bedrock_relay, execute_state_machines, run_execution
from ragline.workflows.deploy import workflow_template
from ragline.workflows.models import S3Objects, WorkflowModels
from ragline.workflows.run import load_workflow, run_workflow

EXAMPLES = Path(__file__).parents[1] / "examples" / "workflows"
VEHICLE = "2023 Toyota RAV4 Hybrid, 41 mpg, 7 airbags, 219 hp"
NOW = 1_800_000_000
ROLE = "arn:aws:iam::123456789012:role/ragline-workflows"


@pytest.fixture
def sfn(moto_url, models, monkeypatch):
    """moto's interpreter on: its DynamoDB and S3 tasks reach this test's moto, its Bedrock tasks the loopback."""
    monkeypatch.setenv("MOTO_PORT", moto_url.rsplit(":", 1)[1])
    execute_state_machines(moto_url)
    try:
        with bedrock_relay(models.endpoint_url):
            yield boto3.client("stepfunctions", endpoint_url=moto_url, region_name="us-east-1")
    finally:
        execute_state_machines(moto_url, on=False)


def deploy(sfn, moto_url, *names):
    """What `sam deploy` of the generated template creates, on moto: its tables, then its state machines."""
    template = workflow_template([load_workflow(EXAMPLES / n) for n in names])
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            props = resource["Properties"]
            if props["TableName"] in dynamodb.list_tables()["TableNames"]:
                dynamodb.delete_table(TableName=props["TableName"])
            dynamodb.create_table(TableName=props["TableName"], AttributeDefinitions=props["AttributeDefinitions"],
                                  KeySchema=props["KeySchema"], BillingMode=props["BillingMode"])
            dynamodb.update_time_to_live(TableName=props["TableName"],
                                         TimeToLiveSpecification=props["TimeToLiveSpecification"])
    machines = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            created = sfn.create_state_machine(name=f"{logical}-{uuid.uuid4().hex[:6]}", roleArn=ROLE,
                                               definition=json.dumps(resource["Properties"]["Definition"]))
            machines[logical] = created["stateMachineArn"]
    return template, machines


def anthropic_prompts(models):
    return [r["body"]["messages"][0]["content"][0]["text"] for r in models.requests
            if r["path"].endswith("/invoke") and "anthropic_version" in r["body"]]


def test_the_generated_template_passes_cfn_lint(tmp_path):
    out = tmp_path / "workflows.yaml"
    subprocess.run([sys.executable, "-m", "ragline", "workflow", "template", *map(str, sorted(
        EXAMPLES.glob("*.yaml"))), "-o", str(out)], check=True, capture_output=True)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    lint = subprocess.run([str(cfn_lint), str(out)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    template = yaml.safe_load(out.read_text())
    cached = template["Resources"]["CarAdvertCachedStateMachine"]["Properties"]["Policies"][0]["Statement"]
    assert [s["Sid"] for s in cached] == ["Models", "Cache"]
    assert cached[0]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/"
                                                 "anthropic.claude-3-haiku-20240307-v1:0"}]
    table = template["Resources"]["RaglineWorkflowCacheTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_car_advert_workflow_returns_its_adverts(sfn, moto_url, models):
    _, machines = deploy(sfn, moto_url, "car-advert.yaml")
    done = run_execution(sfn, machines["CarAdvertStateMachine"], {"vehicle": VEHICLE})
    assert done["status"] == "SUCCEEDED", done
    steps = done["output"]["steps"]
    assert set(steps) == {"adverts", "combined"} and set(steps["adverts"]) == {"family", "performance", "eco"}
    assert steps["adverts"]["family"] == f"Re: Write a two-sentence car advert for a family with young children. " \
                                         f"Vehicle: {VEHICLE}"
    prompts = anthropic_prompts(models)
    assert len(prompts) == 4
    combined = next(p for p in prompts if p.startswith("Combine"))
    assert f"Family: {steps['adverts']['family']}" in combined  # each branch's output reached the last prompt
    assert done["output"]["output"] == steps["combined"]["text"] == "Re: " + combined.strip().splitlines()[-1]


def test_the_cached_workflow_is_served_from_the_table_then_regenerated_after_its_ttl(sfn, moto_url, models):
    _, machines = deploy(sfn, moto_url, "car-advert-cached.yaml")
    machine = machines["CarAdvertCachedStateMachine"]
    first = run_execution(sfn, machine, {"vehicle": VEHICLE, "now": NOW})
    assert first["status"] == "SUCCEEDED" and first["output"]["cache"] == "miss", first
    calls = len(anthropic_prompts(models))
    item = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1").get_item(
        TableName="ragline-workflow-cache", Key={"pk": {"S": f"car-advert-cached:{VEHICLE}"}})["Item"]
    ttl = load_workflow(EXAMPLES / "car-advert-cached.yaml").cache.ttl_seconds
    assert item["expires_at"] == {"N": str(NOW + ttl)}  # the table's TTL attribute

    second = run_execution(sfn, machine, {"vehicle": VEHICLE, "now": NOW + 60})
    assert second["output"] == {"output": first["output"]["output"], "cache": "hit"}
    assert len(anthropic_prompts(models)) == calls  # no model call

    later = run_execution(sfn, machine, {"vehicle": VEHICLE, "now": NOW + ttl + 1})
    assert later["output"]["cache"] == "miss" and len(anthropic_prompts(models)) == 2 * calls

    no_clock = run_execution(sfn, machine, {"vehicle": VEHICLE})
    assert no_clock["status"] == "FAILED"
    history = sfn.get_execution_history(executionArn=no_clock["executionArn"])["events"]
    failed = next(e for e in history if e["type"] == "ExecutionFailed")["executionFailedEventDetails"]
    assert failed["error"] == "ragline.NoClock" and '"now"' in failed["cause"]


def test_a_distributed_map_reads_its_items_from_s3_and_writes_its_results_back(sfn, moto_url, models):
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    vehicles = [f"Vehicle {n}: {VEHICLE}" for n in range(5)]
    if "ragline-marketing" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="ragline-marketing")
    s3.put_object(Bucket="ragline-marketing", Key="vehicles.json", Body=json.dumps(vehicles).encode())
    _, machines = deploy(sfn, moto_url, "car-adverts-s3.yaml")
    done = run_execution(sfn, machines["CarAdvertsS3StateMachine"], {})
    assert done["status"] == "SUCCEEDED", done
    prompts = anthropic_prompts(models)
    assert sorted(prompts) == sorted(f"Write a two-sentence car advert for this vehicle: {v}" for v in vehicles)
    writer = done["output"]["steps"]["adverts"]["ResultWriterDetails"]
    assert writer["Bucket"] == "ragline-marketing" and writer["Key"].startswith("adverts/")
    manifest = json.loads(s3.get_object(Bucket="ragline-marketing", Key=writer["Key"])["Body"].read())
    assert manifest["DestinationBucket"] == "ragline-marketing"  # moto writes the manifest, not the result files


def test_the_same_distributed_map_runs_locally_against_s3(moto_url, aws_env):
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    if "ragline-marketing" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="ragline-marketing")
    s3.put_object(Bucket="ragline-marketing", Key="vehicles.json", Body=json.dumps(["a van", "a bike"]).encode())
    settings = Settings(aws_endpoint_url=moto_url, aws_region="us-east-1")
    workflow = load_workflow(EXAMPLES / "car-adverts-s3.yaml").model_copy(update={"model": "openai"})
    with FaultyOpenAIServer(["ok"]) as server:
        models = WorkflowModels(Settings(chat_model="openai", openai_base_url=server.base_url, openai_model="m"), 2)
        result = run_workflow(workflow, {}, models, objects=S3Objects(settings))
    assert len(result.output) == 2
    written = json.loads(s3.get_object(Bucket="ragline-marketing", Key="adverts/adverts.json")["Body"].read())
    assert [w["item"] for w in written] == ["a van", "a bike"] and all(w["output"] for w in written)
