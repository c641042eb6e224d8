"""``ragline doctor`` over each retrieval option, against the real local parts and the loopback AWS services."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ragline.ingest.pipeline import expand_paths, source_items
from ragline.interfaces.doctor import checks, render
from ragline.testing.aws import FakeAWSModels
from ragline.testing.opensearch import FakeOpenSearch

from conftest import write

KB = "KBID123456"
KENDRA = "0f3e1c2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"


def statuses(results):
    return {c.part: c.status for c in results}


def test_local_defaults(make_app, tmp_path):
    app = make_app(chat_model="local")
    write(tmp_path / "kb", "a.md", "# A\n\nAlpha bravo charlie.")
    app.ingestor.run(source_items(expand_paths([str(tmp_path / "kb")])))
    results = checks(app)
    assert statuses(results) == {"embedder": "ok", "registry": "ok", "store": "ok", "retriever": "unused",
                                 "chat model": "ok", "verifier": "ok", "uploads": "unused"}
    by_part = {c.part: c for c in results}
    assert by_part["store"].detail == f"1 chunks in {app.settings.index_dir}"
    assert by_part["chat model"].detail.endswith("MB)") and ".gguf" in by_part["chat model"].detail
    assert render(results).endswith("every configured part answers")


@pytest.mark.usefixtures("aws_env")
def test_each_aws_option_is_checked_with_the_call_it_serves_with(make_app):
    passage = {"id": "a", "title": "A", "text": "ragline doctor passage", "uri": "s3://b/a.md"}
    with FakeAWSModels(passages=[passage]) as aws, FakeOpenSearch(service="aoss") as search:
        aws_settings = {"aws_region": "us-east-1", "aws_endpoint_url": aws.endpoint_url, "embedder": "fake"}
        opensearch = checks(make_app(store="opensearch", opensearch_url=search.url, opensearch_auth="aoss",
                                     chat_model="bedrock",
                                     **aws_settings))
        kb = checks(make_app(retriever="knowledge-base", knowledge_base_id=KB, chat_model="bedrock", **aws_settings))
        kendra = checks(make_app(retriever="kendra", kendra_index_id=KENDRA, chat_model="extractive", **aws_settings))
        answerer = checks(make_app(chat_model="knowledge-base", knowledge_base_id=KB, **aws_settings))
        aws.script = ["denied"]
        guarded = checks(make_app(verifier="guardrail", guardrail_id="gr-1", **aws_settings))
        aws.script = ["denied"]
        denied = checks(make_app(chat_model="bedrock", retry_attempts=1, **aws_settings))
    assert statuses(opensearch) == {"embedder": "ok", "registry": "ok", "store": "ok", "retriever": "unused",
                                    "chat model": "ok", "verifier": "ok", "uploads": "unused"}
    assert "the index is created at the first ingest" in opensearch[2].detail
    verifier = next(c for c in guarded if c.part == "verifier")  # a real ApplyGuardrail call to the loopback
    assert verifier.status == "ok" and "gr-1" in verifier.detail and verifier.detail.endswith("is supported")
    assert "one-token" in opensearch[4].detail
    assert (statuses(kb)["store"], statuses(kb)["retriever"]) == ("unused", "ok")
    assert kb[3].detail == "answered Retrieve (1 result)"
    assert statuses(kendra)["retriever"] == "ok" and kendra[3].configured == f"kendra index {KENDRA}"
    assert (statuses(answerer)["store"], statuses(answerer)["retriever"], statuses(answerer)["chat model"]) == (
        "unused", "unused", "ok")
    assert statuses(denied)["chat model"] == "failed" and "access denied" in denied[4].detail
    assert render(denied).endswith("1 part failed")


def test_the_command_exits_1_and_names_the_failure_and_ingest_is_refused_when_answers_come_from_elsewhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLINE_", "AWS_"))}
    env.update(RAGLINE_CONFIG=str(tmp_path / "absent.toml"), RAGLINE_HOME=str(tmp_path / "home"),
               RAGLINE_CHAT_MODEL="extractive", RAGLINE_STORE="opensearch", RAGLINE_OPENSEARCH_URL="http://127.0.0.1:9",
               RAGLINE_RETRY_ATTEMPTS="1")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ragline", *args], capture_output=True, text=True,
                              env={**env, **extra}, timeout=120, check=False)

    doctor = run("doctor")
    assert doctor.returncode == 1, doctor.stderr
    assert "✗ store" in doctor.stdout and "cannot connect" in doctor.stdout
    assert doctor.stdout.strip().endswith("1 part failed")
    as_json = json.loads(run("doctor", "--json").stdout)
    assert [c["part"] for c in as_json if c["status"] == "failed"] == ["store"]
    write(tmp_path / "kb", "a.md", "# A\n\nAlpha.")
    refused = run("ingest", str(tmp_path / "kb"), RAGLINE_RETRIEVER="knowledge-base", RAGLINE_KNOWLEDGE_BASE_ID=KB)
    assert refused.returncode == 2
    assert "whose documents are ingested by the knowledge base's data source sync" in refused.stderr
