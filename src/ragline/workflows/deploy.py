"""What SAM deploys for workflows: each state machine with its least-privilege role, and the cache tables.

``ragline workflow template FILE… -o workflows.yaml`` writes it; ``sam deploy -t workflows.yaml`` deploys it. Each
machine may invoke exactly the Bedrock models its steps name (in the stack's region), read and write its cache
table, and for a distributed map read its items object, write under its results prefix and run its own child
executions. The cache tables have a TTL on ``expires_at``, which the exported cache writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from ragline.workflows.export import BEDROCK_INVOKE, DEFAULT_BEDROCK_MODEL, export_asl, s3_parts
from ragline.workflows.run import Workflow


def _logical(name: str) -> str:
    """A CloudFormation logical id from a name (letters and digits only)."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _tasks(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every state, nested ones (Parallel branches, Map processors) included."""
    for state in states.values():
        yield state
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"])
        if "ItemProcessor" in state:
            yield from _tasks(state["ItemProcessor"]["States"])


def _statements(wf: Workflow, definition: dict[str, Any], tables: dict[str, str]) -> list[dict[str, Any]]:
    states = list(_tasks(definition["States"]))
    models = sorted({s["Parameters"]["ModelId"] for s in states if s.get("Resource") == BEDROCK_INVOKE})
    statements: list[dict[str, Any]] = [{
        "Sid": "Models", "Effect": "Allow", "Action": "bedrock:InvokeModel",
        "Resource": [{"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/{m}"}
                     for m in models],
    }]
    if wf.cache is not None:
        statements.append({"Sid": "Cache", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                           "Resource": {"Fn::GetAtt": [tables[wf.cache.table], "Arn"]}})
    for step in wf.steps:
        if step.map is None or step.map.items is None:
            continue
        bucket, key = s3_parts(step.map.items)
        statements.append({"Sid": f"Items{_logical(step.id)}", "Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}/{key}"}})
        if step.map.results is not None:
            bucket, prefix = s3_parts(step.map.results)
            statements.append({
                "Sid": f"Results{_logical(step.id)}", "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket}/{prefix}*"}})
        machine = f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:" \
                  f"${{AWS::StackName}}-{wf.name}"
        execution = f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:" \
                    f"${{AWS::StackName}}-{wf.name}/*"
        statements += [
            {"Sid": f"ChildExecutions{_logical(step.id)}", "Effect": "Allow", "Action": "states:StartExecution",
             "Resource": {"Fn::Sub": machine}},
            {"Sid": f"ChildExecutionState{_logical(step.id)}", "Effect": "Allow",
             "Action": ["states:DescribeExecution", "states:StopExecution"], "Resource": {"Fn::Sub": execution}},
        ]
    return statements


def workflow_template(workflows: Sequence[Workflow], *, bedrock_model: str = DEFAULT_BEDROCK_MODEL) -> dict[str, Any]:
    """A SAM template with a state machine per workflow and a table per cache table they name."""
    resources: dict[str, Any] = {}
    tables: dict[str, str] = {}
    for table in sorted({wf.cache.table for wf in workflows if wf.cache is not None}):
        tables[table] = f"{_logical(table)}Table"
        resources[tables[table]] = {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": table, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        }}
    outputs: dict[str, Any] = {}
    for wf in workflows:
        definition = export_asl(wf, bedrock_model=bedrock_model)
        logical = f"{_logical(wf.name)}StateMachine"
        resources[logical] = {"Type": "AWS::Serverless::StateMachine", "Properties": {
            "Name": {"Fn::Sub": f"${{AWS::StackName}}-{wf.name}"},
            "Type": "STANDARD",
            "Definition": definition,
            "Policies": [{"Statement": _statements(wf, definition, tables)}],
            "Tracing": {"Enabled": True},
        }}
        clock = ' (with "now": epoch seconds)' if wf.cache else ""
        outputs[logical] = {"Description": f"aws stepfunctions start-execution --input '{{...}}'{clock}",
                            "Value": {"Ref": logical}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "ragline workflows as Step Functions state machines on Bedrock (ragline workflow template)",
        "Resources": resources,
        "Outputs": outputs,
    }
