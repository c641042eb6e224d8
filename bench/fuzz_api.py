"""The API against its own OpenAPI document: schemathesis, every check, as an outsider with one tenant's key.

    uv run python bench/fuzz_api.py [--max-time 600] [--continue-on-failure] [--version 4.32.5]

Starts ``ragline serve`` (API keys on, the extractive answerer) on a fresh home with two small documents, makes a
key, and runs ``schemathesis run /openapi.json --checks all`` (fetched from PyPI by ``uvx``, at the version
given) with that key for ``--max-time`` seconds. Exits with schemathesis's status; its summary is printed last.
A server error, a status a route does not declare, or a body that breaks the declared schema is a failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ragline.testing.process import ragline_server

DOCS = {
    "lex.md": "# Amazon Lex\n\nAmazon Lex is an AWS service for building conversational interfaces.\n\n"
              "## Limits\n\nA bot may have up to 250 intents.\n",
    "retention.md": "# Retention\n\nLogs are kept for thirty days, then deleted.\n",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-time", type=int, default=600, help="seconds of fuzzing")
    parser.add_argument("--continue-on-failure", action="store_true")
    parser.add_argument("--version", default="4.32.5", help="schemathesis release")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ragline-fuzz-"))
    try:
        return _fuzz(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _fuzz(args: argparse.Namespace, home: Path) -> int:
    env = {**os.environ, "RAGLINE_HOME": str(home / "home"), "RAGLINE_AUTH": "api_key",
           "RAGLINE_CHAT_MODEL": "extractive", "RAGLINE_METRICS_TOKEN": "fuzz-metrics"}
    for name, text in DOCS.items():
        (home / name).write_text(text, encoding="utf-8")
    ragline = [sys.executable, "-m", "ragline"]
    subprocess.run([*ragline, "ingest", str(home / "lex.md"), str(home / "retention.md")], env=env, check=True,
                   capture_output=True)
    created = subprocess.run([*ragline, "keys", "create", "--tenant", "fuzz"], env=env, check=True,
                             capture_output=True, text=True)
    key = next(w for w in created.stdout.split() if w.startswith("rl_"))
    with ragline_server(env) as (url, _):
        command = ["uvx", "--from", f"schemathesis=={args.version}", "schemathesis", "run", f"{url}/openapi.json",
                   "--checks", "all", "--max-time", str(args.max_time), "--workers", "2",
                   "-H", f"Authorization: Bearer {key}"]
        if args.continue_on_failure:
            command.append("--continue-on-failure")
        print("$", " ".join(c if not c.startswith("Authorization") else "Authorization: Bearer rl_…" for c in command),
              flush=True)
        return subprocess.run(command, check=False, cwd=home).returncode  # its crash cache stays in the temp home


if __name__ == "__main__":
    sys.exit(main())
