"""Create the stateful resources of ``deploy/template.yaml`` on an AWS-compatible endpoint (moto, LocalStack).

The tests build their bucket, table, queues and user pool from the template's own resource properties, and
configure ragline from the functions' environment as the template declares it, so the code and the template
cannot drift apart. The same command sets up a local emulation for development:
``python -m ragline.testing.provision --endpoint-url http://127.0.0.1:5000``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ragline.providers.aws.clients import client

# A checkout's template, relative to where the command runs: the template is the deployment's, not the package's,
# so an installed ragline provisions from the template it is given (``--template``).
TEMPLATE = Path("deploy/template.yaml")
ACCOUNT = "123456789012"  # moto's default account


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form intrinsic functions (``!Ref``, ``!Sub``, ``!GetAtt``…)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data (intrinsics in their long form)."""
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader subclass
    return data


@dataclass
class Stack:
    """What was created, by logical id, and how to resolve references to it."""

    name: str
    region: str
    parameters: dict[str, Any]
    conditions: dict[str, bool] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 (one branch per intrinsic function)
        """Evaluate the intrinsic functions in ``value`` against this stack."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (name, arg), = value.items()
        if name == "Ref":
            return self._ref(arg)
        if name == "Fn::GetAtt":
            return self.arns[arg[0]] if arg[1] == "Arn" else self.refs[arg[0]]
        if name == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return re.sub(r"\$\{([\w:.]+)\}", lambda m: str(names[m.group(1)]) if m.group(1) in names
                          else self._sub(m.group(1)), text)
        if name == "Fn::Join":
            return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
        if name == "Fn::Split":
            return str(self.resolve(arg[1])).split(arg[0])
        if name == "Fn::Select":
            return self.resolve(arg[1])[int(arg[0])]
        if name == "Fn::If":
            return self.resolve(arg[1] if self.conditions[arg[0]] else arg[2])
        if name == "Fn::Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if name == "Fn::Not":
            return not self.resolve(arg[0])
        if name in ("Fn::And", "Fn::Or"):
            return (all if name == "Fn::And" else any)(self.resolve(a) for a in arg)
        if name == "Condition":
            return self.conditions[arg]
        return {name: self.resolve(arg)}

    @classmethod
    def of(cls, template: dict[str, Any], name: str = "ragline", region: str = "us-east-1",
           parameters: dict[str, Any] | None = None) -> Stack:
        """A stack of the template with its parameters (defaults, then ``parameters``) and conditions evaluated."""
        params = {k: p.get("Default") for k, p in template.get("Parameters", {}).items()}
        params.update(parameters or {})
        for key, spec in template.get("Parameters", {}).items():  # a CommaDelimitedList is a list of strings
            if spec.get("Type") == "CommaDelimitedList" and isinstance(params[key], str):
                params[key] = params[key].split(",")
        stack = cls(name, region, params)
        for cname, expr in template.get("Conditions", {}).items():  # in order: later ones may use earlier ones
            stack.conditions[cname] = bool(stack.resolve(expr))
        return stack

    def _ref(self, name: str) -> Any:
        pseudo = {"AWS::StackName": self.name, "AWS::Region": self.region, "AWS::AccountId": ACCOUNT,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.refs[name]

    def _sub(self, name: str) -> str:
        if "." in name:
            logical, attribute = name.split(".", 1)
            return str(self.arns[logical] if attribute == "Arn" else self.refs[logical])
        return str(self._ref(name))

    def resources(self, template: dict[str, Any]) -> list[str]:
        """The logical ids of the resources this stack creates (those whose Condition holds)."""
        return [name for name, r in template["Resources"].items() if self.conditions.get(r.get("Condition"), True)]

    def environment(self, template: dict[str, Any], function: str | None = None) -> dict[str, str]:
        """A function's environment variables as the template sets them (Globals, then the function's own)."""
        env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        values = {k: str(r) for k, v in env.items() if (r := self.resolve(v)) is not None}  # None: AWS::NoValue
        if function is not None:
            own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
            for k, v in own.items():
                try:
                    resolved = self.resolve(v)
                except KeyError:  # refers to a resource that is not emulated (an API Gateway id)
                    continue
                if resolved is not None:
                    values[k] = str(resolved)
        return values


def provision(endpoint_url: str, *, name: str = "ragline", region: str = "us-east-1",
              parameters: dict[str, Any] | None = None, path: Path = TEMPLATE) -> tuple[Stack, dict[str, Any]]:
    """Create the template's table, queues, bucket (with notifications) and user pool; return the stack."""
    template = load_template(path)
    stack = Stack.of(template, name, region, parameters)
    resources = template["Resources"]

    def of_type(kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(k, r.get("Properties", {})) for k, r in resources.items() if r["Type"] == kind]

    def aws(service: str) -> Any:
        return client(service, region, endpoint_url)

    for logical, props in of_type("AWS::DynamoDB::Table"):
        table = f"{name}-{logical}"
        aws("dynamodb").create_table(
            TableName=table, AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
            BillingMode=props["BillingMode"],
        )
        if "TimeToLiveSpecification" in props:
            aws("dynamodb").update_time_to_live(
                TableName=table, TimeToLiveSpecification=props["TimeToLiveSpecification"])
        stack.refs[logical] = table
        stack.arns[logical] = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"

    queues = of_type("AWS::SQS::Queue")
    queues.sort(key=lambda q: "RedrivePolicy" in q[1])  # dead-letter queues first
    for logical, props in queues:
        attributes = {k: json.dumps(stack.resolve(v)) if isinstance(v, dict) else str(stack.resolve(v)).lower()
                      if isinstance(v, bool) else str(stack.resolve(v)) for k, v in props.items()}
        url = aws("sqs").create_queue(QueueName=f"{name}-{logical}", Attributes=attributes)["QueueUrl"]
        stack.refs[logical] = url
        stack.arns[logical] = aws("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for _, props in of_type("AWS::SQS::QueuePolicy"):
        for url in stack.resolve(props["Queues"]):
            aws("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(stack.resolve(props["PolicyDocument"]))})

    for logical, props in of_type("AWS::S3::Bucket"):
        bucket = stack.resolve(props["BucketName"])
        aws("s3").create_bucket(Bucket=bucket)
        stack.refs[logical] = bucket
        stack.arns[logical] = f"arn:aws:s3:::{bucket}"
        queues_config = [
            {"QueueArn": stack.resolve(q["Queue"]), "Events": [q["Event"]],
             "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}}
            for q in props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        ]
        if queues_config:
            aws("s3").put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues_config})

    for logical, props in of_type("AWS::Cognito::UserPool"):
        pool = aws("cognito-idp").create_user_pool(
            PoolName=stack.resolve(props["UserPoolName"]), Policies=props.get("Policies", {}),
            AutoVerifiedAttributes=props.get("AutoVerifiedAttributes", []),
            UsernameAttributes=props.get("UsernameAttributes", []),
        )["UserPool"]
        stack.refs[logical], stack.arns[logical] = pool["Id"], pool["Arn"]
    for logical, props in of_type("AWS::Cognito::UserPoolClient"):
        names = ("AllowedOAuthFlows", "AllowedOAuthScopes", "AllowedOAuthFlowsUserPoolClient",
                 "SupportedIdentityProviders")
        oauth: dict[str, Any] = {k: props[k] for k in names if k in props}
        try:  # the page client's callback is the function's URL, which only a deployment knows
            oauth["CallbackURLs"] = stack.resolve(props.get("CallbackURLs", []))
        except KeyError:
            oauth["CallbackURLs"] = []
        created = aws("cognito-idp").create_user_pool_client(
            UserPoolId=stack.resolve(props["UserPoolId"]),
            ClientName=stack.resolve(props.get("ClientName", f"{name}-{logical}")),
            GenerateSecret=props.get("GenerateSecret", False), ExplicitAuthFlows=props.get("ExplicitAuthFlows", []),
            **oauth,
        )["UserPoolClient"]
        stack.refs[logical] = created["ClientId"]
    for logical, props in of_type("AWS::Cognito::UserPoolDomain"):
        domain = stack.resolve(props["Domain"])
        aws("cognito-idp").create_user_pool_domain(Domain=domain, UserPoolId=stack.resolve(props["UserPoolId"]))
        stack.refs[logical] = domain
    return stack, template


def main() -> None:
    """Set up the template's resources on a local endpoint and print the environment to use them."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--stack-name", default="ragline")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the SAM template (deploy/template.yaml)")
    args = parser.parse_args()
    stack, template = provision(args.endpoint_url, name=args.stack_name, region=args.region, path=args.template)
    env = stack.environment(template)
    env["RAGLINE_AWS_ENDPOINT_URL"] = args.endpoint_url
    for key, value in sorted(env.items()):
        print(f"export {key}='{value}'")


if __name__ == "__main__":
    main()
