#!/usr/bin/env bash
# Creates each peer's own virtual environment (bench/peers/NAME/.venv) from its pinned requirements, with
# bytecode compiled at install as ragline's own environment is (`make dev`), so cold starts compare fairly.
set -euo pipefail
cd "$(dirname "$0")"
for peer in langchain llamaindex; do
  if [ ! -x "$peer/.venv/bin/python" ]; then
    uv venv -q -p 3.11 "$peer/.venv"
  fi
  # copies, not hard links into uv's cache: nltk (under LlamaIndex) refuses to open multiply-linked files
  uv pip install -q --compile-bytecode --link-mode copy -p "$peer/.venv/bin/python" -r "$peer/requirements.txt"
done
