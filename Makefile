# One-command set-up for a fresh machine: `make run` (the demo) and `make test` (the test suite).
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
# llama-cpp-python builds from source here; its multimodal part (LLAVA) is not used. uv caches the wheel.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
QUESTION ?= What is Amazon Lex?

.PHONY: setup dev run test lint eval-scifact clean

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

# --inexact: leave the test tools alone if `make test` installed them.
setup: $(UV)
	$(UV) sync --frozen --no-dev --inexact

dev: $(UV)
	$(UV) sync --frozen

run: setup
	$(UV) run --no-sync ragline ingest samples/amazon-lex-developer-guide.jsonl.gz
	$(UV) run --no-sync ragline ask --k 3 "$(QUESTION)"
	@echo
	@echo 'Ask more:  uv run ragline ask "How do I create a bot?"   or   uv run ragline chat'

test: dev
	$(UV) run --no-sync pytest

lint: dev
	$(UV) run --no-sync ruff check src tests scripts
	$(UV) run --no-sync mypy --strict src/ragline

eval-scifact: setup
	$(UV) run --no-sync ragline --home .ragline-eval/scifact eval retrieval --beir ../shared/data/scifact

clean:
	rm -rf .ragline .ragline-eval .pytest_cache .mypy_cache .ruff_cache
