"""The ``ragline`` command as a user runs it: a real subprocess, real model, temp home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write

LEX = (
    "# What Is Amazon Lex?\n\n"
    "Amazon Lex is an AWS service for building conversational interfaces using voice and text.\n"
)


def run(home: Path, *args: str, check: bool = True, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    env["RAGLINE_CONFIG"] = str(home / "absent.toml")
    env.update(settings)
    proc = subprocess.run(
        [sys.executable, "-m", "ragline", "--home", str(home), *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write(tmp_path / "kb", "lex.md", LEX)
    write(tmp_path / "kb", "notes.txt", "Meeting notes: the launch moved to March.")
    result = run(home, "ingest", str(tmp_path / "kb"), "--tag", "team=docs")
    assert "2 documents: 2 added, 0 updated, 0 unchanged, 0 failed" in result.stdout
    return home


def test_ingest_logs_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    for n in range(3):
        write(tmp_path / "kb", f"page{n}.md", f"# Page {n}\n\nPage {n} says the launch moved to March.\n")
    quiet = run(tmp_path / "quiet", "ingest", str(tmp_path / "kb"))
    assert "ingesting:" not in quiet.stderr  # a short run, under the default 10 s: no noise
    chatty = run(tmp_path / "home", "ingest", str(tmp_path / "kb"), RAGLINE_PROGRESS_SECONDS="0")
    lines = [line for line in chatty.stderr.splitlines() if line.startswith("ingesting: ")]
    assert [line.split(",")[0] for line in lines] == [f"ingesting: {n} documents" for n in (1, 2, 3)]
    assert lines[-1].split(", ")[1] == "3 chunks"
    assert "3 documents: 3 added" in chatty.stdout


def test_ask_streams_then_lists_sources(kb: Path) -> None:
    out = run(kb, "ask", "--model", "extractive", "What is Amazon Lex?").stdout
    assert out.startswith("Amazon Lex is an AWS service for building conversational interfaces")
    assert "\nSources:\n *[1] " in out and "lex.md" in out


def test_ask_json_with_filters(kb: Path) -> None:
    out = run(kb, "ask", "--json", "--model", "extractive", "--where", "team=docs", "--k", "1", "When is the launch?")
    answer = json.loads(out.stdout)
    assert answer["sources"][0]["doc_id"].endswith("notes.txt")
    assert answer["citations"][0]["number"] == 1
    assert set(answer["timings_ms"]) >= {"retrieve", "total"}


def test_show_prompt_prints_the_numbered_sources(kb: Path) -> None:
    out = run(kb, "ask", "--show-prompt", "--model", "local", "--max-tokens", "4", "--k", "1",
              "What is Amazon Lex?").stdout
    assert "--- system ---\nYou answer questions using only the numbered sources provided." in out
    assert "[1] What Is Amazon Lex?" in out
    assert out.index("--- answer ---") < out.rindex("Sources:")
    extractive = run(kb, "ask", "--show-prompt", "--model", "extractive", "--k", "1", "What is Amazon Lex?").stdout
    assert "--- no prompt: extractive answers without a language model ---" in extractive


def test_ls_and_rm(kb: Path) -> None:
    lines = run(kb, "ls").stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ready") for line in lines)
    doc_id = json.loads(run(kb, "ls", "--json").stdout.splitlines()[0])["doc_id"]
    assert run(kb, "rm", doc_id).stdout == f"removed {doc_id}\n"
    missing = run(kb, "rm", doc_id, check=False)
    assert missing.returncode == 3
    assert f"error: no such document: {doc_id}" in missing.stderr


def test_user_errors_are_one_clear_line(kb: Path) -> None:
    bad_model = run(kb, "ask", "--model", "gpt-17", "hi", check=False)
    assert bad_model.returncode == 2
    assert ("error: invalid settings: chat_model: Input should be 'local', 'extractive', 'openai', 'bedrock' or "
            "'knowledge-base'" in bad_model.stderr)
    long_question = run(kb, "ask", "--model", "extractive", "x" * 100_000, check=False)
    assert long_question.returncode == 2
    assert "error: the question is 100,000 characters; the limit is 4,000" in long_question.stderr
    missing = run(kb, "ingest", "nowhere.pdf", check=False)
    assert missing.returncode == 2 and "error: no such file or folder: nowhere.pdf" in missing.stderr
    picture = kb.parent / "photo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    image_to_text_model = run(kb, "ask", "--model", "extractive", "--image", str(picture), "What is this?", check=False)
    assert image_to_text_model.returncode == 2
    assert "error: the model extractive does not take images; use a Bedrock model" in image_to_text_model.stderr
    not_an_image = run(kb, "ask", "--model", "extractive", "--image", str(kb.parent / "kb" / "lex.md"), "?",
                       check=False)
    assert "lex.md: not an image ragline can send; use .png, .jpg, .gif or .webp" in not_an_image.stderr
    assert "Traceback" not in (bad_model.stderr + long_question.stderr + missing.stderr
                               + image_to_text_model.stderr + not_an_image.stderr)


def test_chat_keeps_going_until_ctrl_d(kb: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ragline", "--home", str(kb), "chat", "--model", "extractive"],
        input="What is Amazon Lex?\n\nWhen is the launch?\n", capture_output=True, text=True, env=env,
        timeout=300, check=True,
    )
    assert proc.stdout.count("Ask a question, start a new search, or CTRL-D to exit:") == 4
    assert "Amazon Lex is an AWS service" in proc.stdout and "March" in proc.stdout
