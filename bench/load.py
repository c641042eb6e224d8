"""A bounded load run against `ragline serve` on loopback: concurrent streamed queries, then mixed requests.

    uv run python bench/load.py [--concurrent 50] [--mixed 200] [--corpus samples/amazon-lex-developer-guide.jsonl.gz]

Starts its own server (extractive model, a temporary home with the corpus ingested), reports latency p50/p95
per phase and errors, and compares the server's open file handles and asyncio tasks before and after (from
/metrics). A benchmark, not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import httpx

from ragline.testing.process import ragline_server

QUESTIONS = ["What is Amazon Lex?", "How do I create a bot?", "What is a slot type?", "How is Amazon Lex priced?",
             "How do I monitor Amazon Lex with CloudWatch?", "What are intents?", "How do I delete a bot?"]


async def gauges(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    found = dict(re.findall(r"^(process_open_fds|ragline_asyncio_tasks) ([0-9.e+]+)$", text, re.MULTILINE))
    return {k: float(v) for k, v in found.items()}


async def streamed(client: httpx.AsyncClient, question: str) -> float:
    started = time.perf_counter()
    async with client.stream("POST", "/v1/query", json={"question": question, "stream": True}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("event: error"):
                raise RuntimeError(line)
    return time.perf_counter() - started


async def mixed_one(client: httpx.AsyncClient, n: int) -> float:
    started = time.perf_counter()
    question = QUESTIONS[n % len(QUESTIONS)]
    kind = n % 5
    if kind == 0:
        await streamed(client, question)
    elif kind == 1:
        (await client.post("/v1/query", json={"question": question, "use_cache": False})).raise_for_status()
    elif kind == 2:
        (await client.post("/v1/chat/completions", json={
            "model": "ragline", "messages": [{"role": "user", "content": question}]})).raise_for_status()
    elif kind == 3:
        (await client.get("/v1/documents")).raise_for_status()
    else:
        (await client.get("/healthz")).raise_for_status()
    return time.perf_counter() - started


async def phase(jobs: list, limit: int) -> tuple[list[float], int]:
    gate = asyncio.Semaphore(limit)
    errors = 0

    async def run(job: object) -> float | None:
        nonlocal errors
        async with gate:
            try:
                return await job  # type: ignore[misc]
            except Exception:  # counted, not raised: the report says how many failed
                errors += 1
                return None

    results = await asyncio.gather(*(run(j) for j in jobs))
    return [r for r in results if r is not None], errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else float("nan")


async def load(base: str, concurrent: int, mixed: int) -> dict[str, object]:
    limits = httpx.Limits(max_connections=concurrent + 10)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await streamed(client, "warm up")
    await asyncio.sleep(6.0)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        before = await gauges(client)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        streams, stream_errors = await phase([streamed(client, QUESTIONS[n % len(QUESTIONS)])
                                              for n in range(concurrent)], concurrent)
        stream_wall = time.perf_counter() - started
        started = time.perf_counter()
        mixes, mixed_errors = await phase([mixed_one(client, n) for n in range(mixed)], 20)
        mixed_wall = time.perf_counter() - started
    await asyncio.sleep(6.0)  # past uvicorn's keep-alive timeout: the load's idle connections are closed
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        after = await gauges(client)
    return {
        "streamed": {"requests": concurrent, "concurrency": concurrent, "errors": stream_errors,
                     "p50_ms": pct(streams, 0.5), "p95_ms": pct(streams, 0.95), "wall_s": round(stream_wall, 2)},
        "mixed": {"requests": mixed, "concurrency": 20, "errors": mixed_errors,
                  "p50_ms": pct(mixes, 0.5), "p95_ms": pct(mixes, 0.95), "wall_s": round(mixed_wall, 2)},
        "server_before": before, "server_after": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--mixed", type=int, default=200)
    parser.add_argument("--corpus", default="samples/amazon-lex-developer-guide.jsonl.gz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "RAGLINE_HOME": home, "RAGLINE_CHAT_MODEL": "extractive"}
        subprocess.run([sys.executable, "-m", "ragline", "ingest", args.corpus], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        with ragline_server(env) as (base, _):
            print(json.dumps(asyncio.run(load(base, args.concurrent, args.mixed)), indent=2))


if __name__ == "__main__":
    main()
