"""Parallel versus sequential wall time of the car-advert workflow on the local model.

    uv run python bench/workflow_parallel.py [--runs 5] [--max-tokens 64] [--remote-delay 1.0]

Runs alternate (parallel, sequential, parallel, …) in one process after a warm-up of each, so both see the same
machine load; reports medians and the ratio. Sequential uses one llama.cpp instance with every core; parallel
uses one instance per branch, the cores shared among them: the best configuration of each.
With ``--remote-delay S`` the model is instead a loopback OpenAI-compatible server that takes S seconds per
call, as a remote API does (the seed's setting).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ragline.settings import Settings
from ragline.testing.fakes import FaultyOpenAIServer
from ragline.workflows.models import WorkflowModels
from ragline.workflows.run import load_workflow, run_workflow

EXAMPLE = Path(__file__).parents[1] / "examples" / "workflows" / "car-advert.yaml"
CAR = {"vehicle": "2023 Toyota RAV4 Hybrid, 41 mpg, 7 airbags, 219 hp, AWD, 5 seats"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--remote-delay", type=float, help="seconds per call of a loopback remote model")
    args = parser.parse_args()
    if args.remote_delay is not None:
        with FaultyOpenAIServer([f"delay:{args.remote_delay}"]) as server:
            settings = Settings(chat_model="openai", openai_base_url=server.base_url, openai_model="remote")
            measure(args, settings, "openai")
        return
    measure(args, Settings(temperature=0.0), "local")


def measure(args: argparse.Namespace, settings: Settings, model: str) -> None:
    """Alternate parallel and sequential runs; print medians and the ratio."""
    workflow = load_workflow(EXAMPLE).model_copy(update={"max_tokens": args.max_tokens, "model": model})
    for step in workflow.steps:
        step.max_tokens = None  # every call gets the same budget, so the two modes do the same work
    parallel_models = WorkflowModels(settings, workflow.max_concurrency)
    sequential_models = WorkflowModels(settings, 1)
    times: dict[str, list[float]] = {"parallel": [], "sequential": []}
    for n in range(args.runs + 1):
        for mode in ("parallel", "sequential"):
            started = time.perf_counter()
            if mode == "parallel":
                run_workflow(workflow, CAR, parallel_models)
            else:
                run_workflow(workflow, CAR, sequential_models, sequential=True)
            if n > 0:  # the first round loads the models
                times[mode].append(time.perf_counter() - started)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    print(json.dumps({
        "model": model if model == "local" else f"loopback remote, {args.remote_delay} s per call",
        "runs": args.runs, "max_tokens": args.max_tokens,
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "parallel_over_sequential": round(medians["parallel"] / medians["sequential"], 3),
        "time_saved_pct": round(100 * (1 - medians["parallel"] / medians["sequential"]), 1),
        "all_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
