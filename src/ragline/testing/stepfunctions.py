"""Exported workflows executed by moto's Step Functions interpreter, for tests.

moto in server mode, with ``{"stepfunctions": {"execute_state_machine": true}}`` (``execute_state_machines``),
interprets the Amazon States Language itself: Pass, Choice, Fail, Parallel, inline and distributed Map (with an
S3 ItemReader and ResultWriter), intrinsic functions, Retry; its DynamoDB and S3 integrations call moto, at
``http://localhost:$MOTO_PORT``. It cannot run the Bedrock integration (``arn:aws:states:::bedrock:invokeModel``)
as it is: moto 5.2.5 relays services it does not model through a boto3 client named after the resource's service,
``bedrock`` (the control plane, whose client has no ``invoke_model``: that is ``bedrock-runtime``), sent to moto's
own port, which serves no Bedrock Runtime; and its Step Functions Local mock configuration (``SFN_MOCK_CONFIG``) is
stubbed out (``load_mock_test_case_for`` returns None). ``bedrock_relay(endpoint)`` therefore teaches that relay,
in this process, what the optimised integration does on AWS: InvokeModel on Bedrock Runtime with the state's
``ModelId`` and ``Body`` (as JSON) at ``endpoint`` (the loopback Bedrock, which checks the Anthropic body), and
``{"Body": the parsed JSON reply, "ContentType"}`` as the task's result. Every other state runs as moto interprets
it. Not proven here: IAM (moto does not evaluate the role), Bedrock's own error names as Step Functions maps them,
and the result files of a ResultWriter (moto writes the manifest only).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def execute_state_machines(moto_url: str, on: bool = True) -> None:
    """Switch moto's Step Functions from recording executions to running them (server mode, any process)."""
    request = urllib.request.Request(f"{moto_url}/moto-api/config", method="POST", data=json.dumps(
        {"stepfunctions": {"execute_state_machine": on}}).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


@contextmanager
def bedrock_relay(endpoint_url: str) -> Iterator[None]:
    """While open, moto's interpreter (in this process) runs ``bedrock:invokeModel`` tasks against ``endpoint_url``."""
    import boto3
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_unsupported as unsupported,
    )

    service = unsupported.StateTaskServiceUnsupported
    original = service._eval_service_task

    def relay(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
              state_credentials: Any) -> None:
        if (self._get_boto_service_name(), self._get_boto_service_action()) != ("bedrock", "invoke_model"):
            original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
            return
        runtime = boto3.client("bedrock-runtime", region_name=resource_runtime_part.region,
                               endpoint_url=endpoint_url, aws_access_key_id="ak", aws_secret_access_key="sk")
        body = normalised_parameters.get("Body")
        reply = runtime.invoke_model(modelId=normalised_parameters["ModelId"], contentType="application/json",
                                     accept="application/json",
                                     body=body if isinstance(body, str | bytes) else json.dumps(body))
        env.stack.append({"Body": json.loads(reply["body"].read()), "ContentType": reply["contentType"]})

    service._eval_service_task = relay  # type: ignore[method-assign]
    try:
        yield
    finally:
        service._eval_service_task = original  # type: ignore[method-assign]


def run_execution(sfn: Any, machine_arn: str, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Start an execution and wait for it to end; the ``describe_execution`` reply (``output`` parsed)."""
    arn = sfn.start_execution(stateMachineArn=machine_arn, name=uuid.uuid4().hex,  # moto names them all "None"
                              input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            if "output" in described:
                described["output"] = json.loads(described["output"])
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"the execution {arn} was still running after {timeout:g} s")
        time.sleep(0.1)
