"""Workflows: YAML validation, the asyncio runner over real HTTP, the cache pattern, and the ASL export."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from ragline.errors import ConfigError
from ragline.providers.local.sqlite import SQLiteRegistry
from ragline.settings import Settings
from ragline.testing.fakes import FaultyOpenAIServer
from ragline.workflows.export import BEDROCK_INVOKE, export_asl
from ragline.workflows.models import WorkflowModels
from ragline.workflows.run import Workflow, load_workflow, render, run_workflow

from conftest import write

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples" / "workflows"
VALIDATOR = ROOT / "tools" / "asl" / "node_modules" / ".bin" / "asl-validator"
CAR = {"vehicle": "2023 Toyota RAV4 Hybrid, 41 mpg, 7 airbags, 219 hp"}


def remote_models(server: FaultyOpenAIServer, concurrency: int = 3):
    settings = Settings(chat_model="openai", openai_base_url=server.base_url, openai_model="m")
    return WorkflowModels(settings, concurrency)


def openai(workflow: Workflow) -> Workflow:
    return workflow.model_copy(update={"model": "openai"})


def test_parallel_branches_really_run_at_the_same_time(tmp_path) -> None:
    workflow = openai(load_workflow(EXAMPLES / "car-advert.yaml"))
    with FaultyOpenAIServer(["delay:0.6"]) as server:
        models = remote_models(server)
        parallel = run_workflow(workflow, CAR, models)
        sequential = run_workflow(workflow, CAR, models, sequential=True)
    assert parallel.output == "Amazon Lex builds chatbots [1]."
    assert parallel.calls == sequential.calls == 4
    assert parallel.timings["adverts"] < 1.5 < sequential.timings["adverts"]  # 3 × 0.6 s overlapped vs in turn
    bodies = [body for _, body in server.requests]
    family = next(b for b in bodies if "young children" in b["messages"][0]["content"])
    assert family["messages"][0]["content"].endswith("Vehicle: " + CAR["vehicle"])
    combined = [b for b in bodies if b["messages"][0]["content"].startswith("Combine")]
    assert "Family: Amazon Lex builds chatbots [1]." in combined[0]["messages"][0]["content"]


def test_map_over_a_list_and_per_step_retry(tmp_path) -> None:
    path = write(tmp_path, "m.yaml", """
name: per-market
model: openai
retry: {max_attempts: 3, base_delay: 0.01, max_delay: 0.05}
steps:
  - id: slogans
    map: {over: input.markets, as: market}
    prompt: "A slogan for {{ market }} about {{ input.product }}"
""")
    with FaultyOpenAIServer(["429", "ok"]) as server:
        result = run_workflow(load_workflow(path), {"markets": ["France", "Japan"], "product": "tea"},
                              remote_models(server))
    assert result.output == ["Amazon Lex builds chatbots [1]."] * 2
    prompts = [body["messages"][0]["content"] for _, body in server.requests]
    assert set(prompts) == {"A slogan for France about tea", "A slogan for Japan about tea"}
    assert len(prompts) == 3  # whichever came first was throttled once, then retried


def test_cached_variant_runs_once(tmp_path) -> None:
    workflow = openai(load_workflow(EXAMPLES / "car-advert-cached.yaml"))
    registry = SQLiteRegistry(tmp_path / "r.sqlite3")
    with FaultyOpenAIServer(["ok"]) as server:
        first = run_workflow(workflow, CAR, remote_models(server), cache=registry)
        calls = len(server.requests)
        second = run_workflow(workflow, CAR, remote_models(server), cache=registry)
        other = run_workflow(workflow, {"vehicle": "a bicycle"}, remote_models(server), cache=registry)
    assert (first.cache, second.cache, other.cache) == ("miss", "hit", "miss")
    assert second.output == first.output and calls == 4
    assert len(server.requests) == 8


def test_invalid_workflows_say_what_is_wrong(tmp_path) -> None:
    cases = {
        "forward.yaml": ("name: x\nsteps:\n  - {id: a, prompt: '{{ steps.b }}'}\n  - {id: b, prompt: hi}\n",
                         "step 'a' reads 'steps.b' before that step has run"),
        "unknown.yaml": ("name: x\nsteps:\n  - {id: a, prompt: '{{ user.name }}'}\n", "unknown name 'user.name'"),
        "both.yaml": ("name: x\nsteps:\n  - {id: a, prompt: hi, parallel: []}\n", "exactly one of 'prompt'"),
        "bad.yaml": ("name: x\nsteps: [\n", "not valid YAML"),
    }
    for name, (text, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_workflow(write(tmp_path, name, text))


def test_render_writes_lists_as_json() -> None:
    assert render("{{ a.b }} / {{ c }}", {"a": {"b": "x"}, "c": [1, "y"]}) == 'x / [1, "y"]'


@pytest.mark.parametrize("name", ["car-advert.yaml", "car-advert-cached.yaml"])
def test_exported_state_machine_is_valid_asl(tmp_path, name) -> None:
    assert VALIDATOR.exists(), "run `make dev` (npm ci --prefix tools/asl) to install asl-validator"
    definition = export_asl(load_workflow(EXAMPLES / name))
    path = tmp_path / "sm.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    proc = subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = definition["States"]
    parallel = states["adverts"]
    assert parallel["Type"] == "Parallel" and len(parallel["Branches"]) == 3
    family = parallel["Branches"][0]["States"]["family"]
    assert family["Resource"] == BEDROCK_INVOKE
    assert family["Parameters"]["Body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert family["Parameters"]["Body"]["messages"][0]["content"][0]["text.$"] == (
        "States.Format('Write a two-sentence car advert for a family with young children. Vehicle: {}', "
        "$.input.vehicle)"
    )
    retry = family["Retry"][0]
    assert retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] == 2.0
    assert (retry["IntervalSeconds"], retry["MaxAttempts"], retry["MaxDelaySeconds"]) == (1, 2, 10)
    assert "Bedrock.ThrottlingException" in retry["ErrorEquals"]
    assert parallel["ResultSelector"] == {"family.$": "States.ArrayGetItem($[*].text, 0)",
                                          "performance.$": "States.ArrayGetItem($[*].text, 1)",
                                          "eco.$": "States.ArrayGetItem($[*].text, 2)"}
    combined = states["combined"]["Parameters"]["Body"]["messages"][0]["content"][0]["text.$"]
    assert "$.steps.adverts.family, $.steps.adverts.performance, $.steps.adverts.eco)" in combined
    if "cached" in name:
        assert states["CacheLookup"]["Resource"] == "arn:aws:states:::dynamodb:getItem"
        assert states["CacheHit"]["Choices"][0]["Next"] == "CacheAge"
        assert states["CacheFresh"]["Choices"][0] == {"Variable": "$.expires.at", "NumericGreaterThanPath": "$.now",
                                                      "Next": "FromCache"}
        assert states["CacheStore"]["Parameters"]["Item"]["expires_at"] == {
            "N.$": "States.Format('{}', States.MathAdd($.now, 86400))"}
        assert states["CacheStore"]["Next"] == "Result"


def test_map_export_and_escaping(tmp_path) -> None:
    workflow = Workflow.model_validate({
        "name": "m", "steps": [
            {"id": "s", "map": {"over": "input.items", "as": "it"}, "prompt": "Say 'hi' {to} {{ it }}"}],
    })
    definition = export_asl(workflow)
    state = definition["States"]["s"]
    assert state["Type"] == "Map" and state["ItemsPath"] == "$.input.items"
    text = state["ItemProcessor"]["States"]["s_item"]["Parameters"]["Body"]["messages"][0]["content"][0]["text.$"]
    assert text == "States.Format('Say \\'hi\\' \\{to\\} {}', $.item)"  # one backslash before ' { }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    proc = subprocess.run([str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
def test_local_model_runs_the_example(tmp_path) -> None:
    settings = Settings(home=tmp_path / "h")
    started = time.perf_counter()
    models = WorkflowModels(settings, 3)
    try:
        result = run_workflow(load_workflow(EXAMPLES / "car-advert.yaml").model_copy(update={"max_tokens": 16}),
                              CAR, models)
    finally:
        models.close()
    assert set(result.steps) == {"family", "performance", "eco", "combined"}
    assert all(isinstance(v, str) and v for v in result.steps.values())
    assert time.perf_counter() - started < 120
