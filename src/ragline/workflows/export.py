"""Export a workflow to an AWS Step Functions state machine (Amazon States Language).

Each prompt becomes a Task on the optimized Bedrock integration (``arn:aws:states:::bedrock:invokeModel``) with
an Anthropic Messages body; parallel branches become a Parallel state, maps a Map state. Every Task retries
throttling and transient Bedrock errors with exponential backoff and full jitter. Templates become
``States.Format`` calls over JSONPaths, so the state machine computes the same prompts as the local runner.
With a ``cache`` block, the machine first looks the result up in DynamoDB and stores it after a run, with an
``expires_at`` (epoch seconds, the table's TTL attribute) of the execution's ``now`` plus ``ttl_seconds``; an item
past it is a miss even before DynamoDB deletes it. JSONPath has no clock, so a cached workflow is started with the
time in its input (``{"now": EPOCH_SECONDS, ...}``; API Gateway's StartExecution integration can map
``$context.requestTimeEpoch``, EventBridge Scheduler its scheduled time), and fails at once, saying so, without
it. A map over ``items: s3://bucket/key.json`` becomes a distributed map: an ItemReader reads the JSON array,
child executions run the items, and a ResultWriter writes the results under ``results``.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from ragline.workflows.run import PLACEHOLDER, RetrySpec, Step, Workflow

BEDROCK_INVOKE = "arn:aws:states:::bedrock:invokeModel"
DEFAULT_BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
RETRYABLE = [
    "Bedrock.ThrottlingException",
    "Bedrock.ServiceUnavailableException",
    "Bedrock.ModelNotReadyException",
    "Bedrock.InternalServerException",
    "Bedrock.ModelTimeoutException",
    "States.Timeout",
]
DYNAMODB_RETRYABLE = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.InternalServerErrorException",
]
_BEDROCK_ID = re.compile(r"^[a-z0-9-]+\.[\w.-]+(:\d+)?$")


def _escape(text: str) -> str:
    """Literal text inside a States.Format template: escape the characters intrinsic functions reserve."""
    return re.sub(r"([\\'{}])", r"\\\1", text)


class _Paths:
    """Where each step's text lives in the state document, and the names a map item is known by."""

    def __init__(self) -> None:
        self.steps: dict[str, str] = {}

    def resolve(self, name: str, item_name: str | None) -> str:
        root, _, rest = name.partition(".")
        if item_name is not None and root == item_name:
            return "$.item" + (f".{rest}" if rest else "")
        if root == "steps":
            step_id, _, deeper = rest.partition(".")
            return self.steps[step_id] + (f".{deeper}" if deeper else "")
        return f"$.{name}"

    def format(self, template: str, item_name: str | None = None) -> dict[str, str]:
        """``{"text.$": "States.Format('…{}…', $.a, $.b)"}``, or a plain string when nothing is filled in."""
        names = PLACEHOLDER.findall(template)
        if not names:
            return {"text": template}
        pieces = PLACEHOLDER.split(template)  # literal, name, literal, name, …, literal
        literal = "{}".join(_escape(p) for p in pieces[0::2])
        args = ", ".join(self.resolve(n, item_name) for n in names)
        return {"text.$": f"States.Format('{literal}', {args})"}


def _retry(spec: RetrySpec) -> list[dict[str, Any]]:
    return [{
        "ErrorEquals": RETRYABLE,
        "IntervalSeconds": max(1, round(spec.base_delay)),
        "BackoffRate": 2.0,
        "MaxAttempts": spec.max_attempts - 1,
        "MaxDelaySeconds": max(1, round(spec.max_delay)),
        "JitterStrategy": "FULL",
    }]


def _model_id(spec: str, default: str) -> str:
    return spec if _BEDROCK_ID.match(spec) and not spec.startswith("openai") else default


def _task(step: Step, wf: Workflow, paths: _Paths, model: str, item_name: str | None = None) -> dict[str, Any]:
    content = {"type": "text", **paths.format(step.prompt or "", item_name)}
    return {
        "Type": "Task",
        "Resource": BEDROCK_INVOKE,
        "Parameters": {
            "ModelId": _model_id(step.model or wf.model, model),
            "Body": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": step.max_tokens or wf.max_tokens,
                "temperature": step.temperature if step.temperature is not None else wf.temperature,
                "messages": [{"role": "user", "content": [content]}],
            },
        },
        # not "$.Body.content[0].text": moto's interpreter returns a list for an indexed path, AWS a value; the
        # intrinsic gives the value on both
        "ResultSelector": {"text.$": "States.ArrayGetItem($.Body.content[*].text, 0)"},
        "Retry": _retry(step.retry or wf.retry),
    }


def _state(step: Step, wf: Workflow, paths: _Paths, model: str) -> dict[str, Any]:
    if step.parallel:
        branches = []
        for branch in step.parallel:
            task = _task(branch, wf, paths, model)
            task["End"] = True
            branches.append({"StartAt": branch.id, "States": {branch.id: task}})
        state: dict[str, Any] = {
            "Type": "Parallel",
            "Branches": branches,
            "ResultSelector": {f"{b.id}.$": f"States.ArrayGetItem($[*].text, {n})"
                               for n, b in enumerate(step.parallel)},
            "ResultPath": f"$.steps.{step.id}",
        }
        for branch in step.parallel:
            paths.steps[branch.id] = f"$.steps.{step.id}.{branch.id}"
        return state
    if step.map:
        return _map(step, wf, paths, model)
    state = _task(step, wf, paths, model)
    state["ResultPath"] = f"$.steps.{step.id}"
    paths.steps[step.id] = f"$.steps.{step.id}.text"
    return state


def _map(step: Step, wf: Workflow, paths: _Paths, model: str) -> dict[str, Any]:
    assert step.map is not None
    task = _task(step, wf, paths, model, item_name=step.map.as_)
    task["End"] = True
    task["OutputPath"] = "$.text"
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemSelector": {"item.$": "$$.Map.Item.Value", "input.$": "$.input", "steps.$": "$.steps"},
        "MaxConcurrency": wf.max_concurrency,
        # state names are unique across the whole machine, nested ones included
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": f"{step.id}_item",
                          "States": {f"{step.id}_item": task}},
        "ResultPath": f"$.steps.{step.id}",
    }
    if step.map.over is not None:
        state["ItemsPath"] = paths.resolve(step.map.over, None)
    else:  # a distributed map: items from S3, each run by a child execution, results written back to S3
        bucket, key = s3_parts(str(step.map.items))
        state["ItemReader"] = {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                               "Parameters": {"Bucket": bucket, "Key": key}}
        state["ItemProcessor"]["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        state["Label"] = step.id
        if step.map.results is not None:
            bucket, prefix = s3_parts(step.map.results)
            state["ResultWriter"] = {"Resource": "arn:aws:states:::s3:putObject",
                                     "Parameters": {"Bucket": bucket, "Prefix": prefix}}
    paths.steps[step.id] = f"$.steps.{step.id}"
    return state


def s3_parts(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def _cache_key(wf: Workflow, paths: _Paths) -> dict[str, str]:
    """The DynamoDB key attribute: the workflow's name and its rendered cache key."""
    key = paths.format(f"{wf.name}:{wf.cache.key if wf.cache else ''}")
    return {"S.$": key["text.$"]} if "text.$" in key else {"S": key["text"]}


def export_asl(wf: Workflow, *, bedrock_model: str = DEFAULT_BEDROCK_MODEL) -> dict[str, Any]:
    """The state machine definition for ``wf``."""
    paths = _Paths()
    states: dict[str, Any] = {}
    init: dict[str, Any] = {"Type": "Pass", "Parameters": {"input.$": "$", "steps": {}}}
    if wf.cache is not None:  # JSONPath has no clock: the execution's input brings the time
        states["CheckClock"] = {
            "Type": "Choice",
            "Choices": [{"And": [{"Variable": "$.now", "IsPresent": True}, {"Variable": "$.now", "IsNumeric": True}],
                         "Next": "Init"}],
            "Default": "NoClock",
        }
        states["NoClock"] = {"Type": "Fail", "Error": "ragline.NoClock", "Cause": (
            'a cached workflow is started with the time in its input: {"now": EPOCH_SECONDS, ...} (the cache '
            "entry expires ttl_seconds after it)")}
        init["Parameters"]["now.$"] = "$.now"
    states["Init"] = init
    order = ["Init"]
    if wf.cache is not None:
        dynamodb_retry = [{**_retry(wf.retry)[0], "ErrorEquals": DYNAMODB_RETRYABLE}]
        first = wf.steps[0].id
        states["CacheLookup"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {"TableName": wf.cache.table, "Key": {"pk": _cache_key(wf, paths)}},
            "ResultPath": "$.cached",
            "Retry": dynamodb_retry,
        }
        states["CacheHit"] = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.cached.Item.expires_at.N", "IsPresent": True, "Next": "CacheAge"}],
            "Default": first,
        }
        states["CacheAge"] = {"Type": "Pass", "Parameters": {"at.$": "States.StringToJson($.cached.Item.expires_at.N)"},
                              "ResultPath": "$.expires", "Next": "CacheFresh"}
        states["CacheFresh"] = {  # DynamoDB deletes expired items within days; until then they are misses here
            "Type": "Choice",
            "Choices": [{"Variable": "$.expires.at", "NumericGreaterThanPath": "$.now", "Next": "FromCache"}],
            "Default": first,
        }
        states["FromCache"] = {"Type": "Pass", "Parameters": {"output.$": "$.cached.Item.output.S",
                                                               "cache": "hit"}, "End": True}
        order += ["CacheLookup", "CacheHit"]
    for step in wf.steps:
        states[step.id] = _state(step, wf, paths, bedrock_model)
        order.append(step.id)
    final = paths.steps[wf.final_output()]
    tail: dict[str, Any] = {"Type": "Pass", "Parameters": {"output.$": final, "steps.$": "$.steps", "cache": "miss"},
                            "End": True}
    if wf.cache is not None:
        final_is_list = any(s.id == wf.final_output() and s.map is not None for s in wf.steps)
        states["CacheStore"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": wf.cache.table, "Item": {
                "pk": _cache_key(wf, paths),
                "output": {"S.$": f"States.JsonToString({final})" if final_is_list else final},
                "expires_at": {"N.$": f"States.Format('{{}}', States.MathAdd($.now, {wf.cache.ttl_seconds}))"},
            }},
            "ResultPath": None,
            "Retry": [{**_retry(wf.retry)[0], "ErrorEquals": DYNAMODB_RETRYABLE}],
        }
        order.append("CacheStore")
    states["Result"] = tail
    order.append("Result")
    for here, after in pairwise(order):
        if states[here]["Type"] != "Choice":
            states[here]["Next"] = after
    return {
        "Comment": f"ragline workflow {wf.name}: {wf.description}".strip(": "),
        "StartAt": "CheckClock" if wf.cache is not None else "Init",
        "States": states,
    }
