"""Cold start of the Lambda entry points, measured locally (no AWS): median of several fresh processes.

* http: spawn ``python -m ragline.interfaces.aws.http`` (what the Lambda Web Adapter starts) until ``/healthz`` answers,
  with the HTTP function's settings from deploy/template.yaml (DynamoDB registry, uploads to S3).
* handlers: ``import ragline.interfaces.aws.handlers`` (what the WebSocket and ingestion functions load at init).
* query path: the imports a first question adds (lancedb, pyarrow, boto3), paid on the first invocation.

Usage: uv run python bench/lambda_cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ENV = {
    "RAGLINE_HOME": "/tmp/ragline-cold", "RAGLINE_REGISTRY": "dynamodb", "RAGLINE_DYNAMODB_TABLE": "ragline",
    "RAGLINE_INDEX_URI": "s3://bucket/index", "RAGLINE_EMBEDDER": "titan", "RAGLINE_CHAT_MODEL": "bedrock",
    "RAGLINE_AUTH": "jwt", "RAGLINE_JWT_JWKS": "https://example.invalid/jwks.json",
    "RAGLINE_UPLOADS_BUCKET": "bucket", "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_cold_start() -> float:
    port = free_port()
    env = {**os.environ, **ENV, "PORT": str(port)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ragline.interfaces.aws.http"], env=env)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait()


def import_time(code: str) -> float:
    env = {**os.environ, **ENV}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    rows = {
        "http: spawn → /healthz": [http_cold_start() for _ in range(runs)],
        "handlers: python + import": [import_time("import ragline.interfaces.aws.handlers") for _ in range(runs)],
        "first question's imports": [
            import_time("import ragline.interfaces.aws.handlers, lancedb, pyarrow, boto3") for _ in range(runs)],
        "python alone": [import_time("pass") for _ in range(runs)],
    }
    for name, values in rows.items():
        print(f"{name:28s} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
