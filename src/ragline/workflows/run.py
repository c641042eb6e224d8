"""Prompt workflows as data: chains, parallel branches and maps of prompts, run locally with asyncio.

A workflow file (YAML) looks like::

    name: car-advert
    model: local                 # default for every step: local, openai:MODEL[@URL], or a Bedrock model id on AWS
    max_concurrency: 3
    retry: {max_attempts: 3, base_delay: 1, max_delay: 10}
    steps:
      - id: features
        prompt: "List the best features of: {{ input.vehicle }}"
      - id: adverts
        parallel:
          - {id: family, prompt: "An advert for families. Features: {{ steps.features }}"}
          - {id: eco, prompt: "An advert for eco-minded buyers. Features: {{ steps.features }}"}
      - id: per_market
        map: {over: input.markets, as: market}
        prompt: "Adapt this advert for {{ market }}: {{ steps.family }}"

Templates read ``input.*``, earlier steps' outputs as ``steps.ID`` and, inside a map, the item by its ``as`` name.
The same file exports to an AWS Step Functions state machine (``ragline.workflows.export``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragline.errors import ConfigError, InputError, validation_message
from ragline.seams import ChatModel
from ragline.types import Message, Token

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


class RetrySpec(BaseModel):
    """Per-step (or workflow-wide) retry policy."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(3, ge=1, le=10)
    base_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(10.0, ge=0)


class MapSpec(BaseModel):
    """Run the step once per item of a list.

    The list comes from the input or an earlier step (``over``), or is the JSON array in an S3 object (``items:
    s3://bucket/key.json``; on AWS a distributed map, whose results go under ``results: s3://bucket/prefix/``).
    """

    model_config = ConfigDict(extra="forbid")
    over: str | None = None
    items: str | None = Field(None, pattern=r"^s3://[^/]+/.+")
    results: str | None = Field(None, pattern=r"^s3://[^/]+/")
    as_: str = Field("item", alias="as")

    @model_validator(mode="after")
    def _one_source(self) -> MapSpec:
        if (self.over is None) == (self.items is None):
            raise ValueError("map: give exactly one of 'over' (a list) or 'items' (s3://bucket/key.json)")
        if self.results is not None and self.items is None:
            raise ValueError("map: 'results' (s3://bucket/prefix/) goes with 'items'")
        return self


class Step(BaseModel):
    """One prompt, a set of parallel branches, or a prompt mapped over a list."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z_]\w*$")
    prompt: str | None = None
    parallel: list[Step] | None = None
    map: MapSpec | None = None
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    retry: RetrySpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.prompt is None) == (self.parallel is None):
            raise ValueError(f"step {self.id!r}: give exactly one of 'prompt' or 'parallel'")
        if self.map is not None and self.prompt is None:
            raise ValueError(f"step {self.id!r}: 'map' needs a 'prompt'")
        return self


class CacheSpec(BaseModel):
    """Look the result up before running, store it after (DynamoDB on AWS, the registry locally)."""

    model_config = ConfigDict(extra="forbid")
    key: str
    table: str = "ragline-workflow-cache"
    ttl_seconds: int = Field(86400, ge=1)


class Workflow(BaseModel):
    """A whole workflow file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    model: str = "local"
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    max_concurrency: int = Field(4, ge=1, le=64)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    cache: CacheSpec | None = None
    output: str | None = None
    steps: list[Step]

    @model_validator(mode="after")
    def _references(self) -> Workflow:
        seen: set[str] = set()
        for step in self.steps:
            for s in step.parallel or [step]:
                for name in placeholders(s.prompt or ""):
                    root, _, rest = name.partition(".")
                    local = step.map.as_ if step.map else None
                    if root == "steps" and rest.split(".")[0] not in seen:
                        raise ValueError(f"step {s.id!r} reads {name!r} before that step has run")
                    if root not in ("input", "steps") and root != local:
                        raise ValueError(f"step {s.id!r}: unknown name {name!r} (use input.*, steps.ID)")
            ids = [b.id for b in step.parallel] if step.parallel else [step.id]
            if seen & set(ids):
                raise ValueError(f"duplicate step id among {ids}")
            seen.update(ids)
        return self

    def final_output(self) -> str:
        """The step whose output is the workflow's result (``output``, else the last step)."""
        return self.output or self.steps[-1].id


def load_workflow(path: Path | str) -> Workflow:
    """Read and validate a workflow file; errors name the file and the problem."""
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return Workflow.model_validate(data)
    except FileNotFoundError as err:
        raise InputError(f"no such workflow file: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    except ValidationError as err:
        raise ConfigError(f"{path}: {validation_message(err)}") from err


def placeholders(template: str) -> list[str]:
    """The dotted names a template reads."""
    return PLACEHOLDER.findall(template)


def lookup(scope: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in nested dicts."""
    value: Any = scope
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise InputError(f"the workflow reads {dotted!r}, which the input does not have")
        value = value[part]
    return value


def render(template: str, scope: Mapping[str, Any]) -> str:
    """Fill ``{{ name }}`` placeholders; lists and objects are written as JSON."""

    def fill(match: re.Match[str]) -> str:
        value = lookup(scope, match.group(1))
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return PLACEHOLDER.sub(fill, template)


@dataclass(slots=True)
class WorkflowResult:
    """Outputs of every step, timings per step, and the final output."""

    output: Any
    steps: dict[str, Any]
    timings: dict[str, float]
    total: float
    cache: str = "off"
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output": self.output, "steps": self.steps, "cache": self.cache, "model_calls": self.calls,
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
            "total_ms": round(self.total * 1000, 1),
        }


ModelFactory = Callable[[str, RetrySpec], ChatModel]


class Objects(Protocol):
    """Reads and writes objects by ``s3://bucket/key`` URL (a map's ``items`` and ``results``)."""

    def get(self, url: str) -> bytes:
        """The object's bytes."""
        ...

    def put(self, url: str, data: bytes) -> None:
        """Write the object."""
        ...


@dataclass(slots=True)
class WorkflowRunner:
    """Runs a workflow with asyncio: parallel branches and map items concurrently, at most ``max_concurrency``."""

    workflow: Workflow
    model_for: ModelFactory
    sequential: bool = False  # for benchmarks: the same work, one call at a time
    objects: Objects | None = None  # for maps over items in S3
    _calls: int = 0
    _timings: dict[str, float] = field(default_factory=dict)

    async def run(self, inputs: Mapping[str, Any]) -> WorkflowResult:
        """Run every step in order and return the result."""
        started = time.perf_counter()
        limit = asyncio.Semaphore(1 if self.sequential else self.workflow.max_concurrency)
        scope: dict[str, Any] = {"input": dict(inputs), "steps": {}}
        for step in self.workflow.steps:
            mark = time.perf_counter()
            if step.parallel:
                outputs = await self._gather([self._prompt(b, scope, limit) for b in step.parallel])
                scope["steps"].update({b.id: out for b, out in zip(step.parallel, outputs, strict=True)})
            elif step.map:
                items = self._items(step, scope)
                scopes = [{**scope, step.map.as_: item} for item in items]
                outputs = await self._gather([self._prompt(step, s, limit) for s in scopes])
                scope["steps"][step.id] = outputs
                if step.map.results:  # as a distributed map's ResultWriter would: one file of item and output
                    self._store().put(f"{step.map.results.rstrip('/')}/{step.id}.json", json.dumps(
                        [{"item": i, "output": o} for i, o in zip(items, outputs, strict=True)]).encode())
            else:
                scope["steps"][step.id] = await self._prompt(step, scope, limit)
            self._timings[step.id] = time.perf_counter() - mark
        return WorkflowResult(
            output=scope["steps"][self.workflow.final_output()], steps=scope["steps"], timings=self._timings,
            total=time.perf_counter() - started, calls=self._calls,
        )

    def _items(self, step: Step, scope: Mapping[str, Any]) -> Sequence[Any]:
        assert step.map is not None
        if step.map.over is not None:
            items = lookup(scope, step.map.over)
            where = repr(step.map.over)
        else:
            where = str(step.map.items)
            try:
                items = json.loads(self._store().get(where))
            except ValueError as err:
                raise InputError(f"step {step.id!r}: {where} is not JSON: {err}") from err
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise InputError(f"step {step.id!r} maps over {where}, which is not a list")
        return items

    def _store(self) -> Objects:
        if self.objects is None:
            raise ConfigError("this workflow reads or writes S3 objects: run it with AWS credentials (and "
                              "RAGLINE_AWS_REGION)")
        return self.objects

    async def _gather(self, calls: list[Any]) -> list[str]:
        if self.sequential:
            return [await c for c in calls]
        return list(await asyncio.gather(*calls))

    async def _prompt(self, step: Step, scope: Mapping[str, Any], limit: asyncio.Semaphore) -> str:
        prompt = render(step.prompt or "", scope)
        model = self.model_for(step.model or self.workflow.model, step.retry or self.workflow.retry)
        max_tokens = step.max_tokens or self.workflow.max_tokens
        async with limit:
            mark = time.perf_counter()
            text = await asyncio.to_thread(_complete, model, prompt, max_tokens)
            self._calls += 1
            self._timings.setdefault(f"{step.id}.calls", 0.0)
            self._timings[f"{step.id}.calls"] += time.perf_counter() - mark
        return text


def _complete(model: ChatModel, prompt: str, max_tokens: int) -> str:
    return "".join(e.text for e in model.stream([Message("user", prompt)], max_tokens=max_tokens)
                   if isinstance(e, Token)).strip()


def run_workflow(
    workflow: Workflow, inputs: Mapping[str, Any], model_for: ModelFactory, *, cache: Any = None,
    sequential: bool = False, objects: Objects | None = None,
) -> WorkflowResult:
    """Run a workflow; with a ``cache`` block and a registry, look the result up first and store it after."""
    key = None
    if workflow.cache is not None and cache is not None:
        key = f"workflow:{workflow.name}:" + render(workflow.cache.key, {"input": dict(inputs), "steps": {}})
        hit = cache.answer_get(key, time.time())
        if hit is not None:
            stored = json.loads(hit)
            return WorkflowResult(output=stored["output"], steps=stored["steps"], timings={}, total=0.0, cache="hit")
    result = asyncio.run(WorkflowRunner(workflow, model_for, sequential=sequential, objects=objects).run(inputs))
    if key is not None and workflow.cache is not None:
        value = json.dumps({"output": result.output, "steps": result.steps})
        cache.answer_put(key, f"workflow:{workflow.name}", value, time.time() + workflow.cache.ttl_seconds)
        result.cache = "miss"
    return result
