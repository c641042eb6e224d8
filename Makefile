# One-command set-up for a fresh machine: `make run` (the demo) and `make test` (the test suite).
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
# llama-cpp-python builds from source here; its multimodal part (LLAVA) is not used. uv caches the wheel.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
# Every install compiles bytecode, as the Lambda images do: where PYTHONDONTWRITEBYTECODE is set (or the folder is
# read-only) a cold `ragline ask` would otherwise compile lancedb's sources each time (3.2 s instead of 1.6 s).
export UV_COMPILE_BYTECODE := 1
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
UVX := $(dir $(UV))uvx
QUESTION ?= What is Amazon Lex?
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama-cpp-python has no wheel on PyPI: it is built once into this folder and installed from there, so no later
# install or test run builds it again (uv's own cache of built wheels is not kept reliably on these machines).
WHEELHOUSE ?= $(HOME)/.cache/ragline/wheels
LLAMA_VERSION := $(shell sed -n '/^name = "llama-cpp-python"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)

.PHONY: llama-wheel llama setup dev run test lint checkov eval-scifact clean

$(UV):
	python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

llama-wheel: $(UV)
	@ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
	  echo "Building llama-cpp-python $(LLAMA_VERSION) once into $(WHEELHOUSE) (6-14 minutes on 2 cores)"; \
	  $(UV) tool run --from 'pip>=24' pip wheel --no-deps --no-binary llama-cpp-python \
	    "llama-cpp-python==$(LLAMA_VERSION)" -w $(WHEELHOUSE); }

# --inexact: leave the test tools alone if `make test` installed them. The default answerer is extractive, so the
# demo needs no llama.cpp build; `make llama` adds the local generative model (RAGLINE_CHAT_MODEL=local).
setup: $(UV)
	$(UV) sync --frozen --no-dev --extra ingest --extra local --extra aws --inexact

llama: llama-wheel
	$(UV) sync --frozen --no-dev --all-extras --inexact --no-install-package llama-cpp-python
	$(UV) pip install --quiet --no-deps $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl

dev: llama-wheel
	$(UV) sync --frozen --all-extras --inexact --no-install-package llama-cpp-python
	$(UV) pip install --quiet --no-deps $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	# asl-validator (npm) checks the Step Functions definitions that `ragline workflow export` writes.
	npm ci --prefix tools/asl --no-audit --no-fund --loglevel=error
	# Debian's Chromium, driven by Playwright in the web-page tests (Playwright's own browser download is not used).
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	# Tesseract reads scanned pages and images (README: "Scanned documents and images"); the OCR tests need it.
	@command -v tesseract >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq tesseract-ocr tesseract-ocr-eng; }

run: setup
	$(UV) run --no-sync ragline ingest samples/amazon-lex-developer-guide.jsonl.gz
	$(UV) run --no-sync ragline ask "$(QUESTION)"
	@echo
	@echo 'Ask more:  uv run ragline ask "How do I create a bot?"   or   uv run ragline chat'
	@echo 'Now serving the web page and the API (CTRL-C stops):'
	$(UV) run --no-sync ragline serve

test: dev
	$(UV) run --no-sync pytest

lint: dev
	$(UV) run --no-sync ruff check src tests scripts bench
	$(UV) run --no-sync mypy --strict src/ragline
	$(UV) run --no-sync cfn-lint deploy/*.yaml

# Security checks of the templates and the Dockerfile (checkov, pinned, run by uvx: not a project dependency).
# Every finding left is skipped in the template or the Dockerfile with its written reason.
checkov:
	BC_SKIP_MAPPING=TRUE $(UVX) --from checkov==3.3.30 checkov --quiet --compact --skip-download \
	  -f deploy/template.yaml -f deploy/ecs.yaml -f deploy/Dockerfile

eval-scifact: setup
	$(UV) run --no-sync ragline --home .ragline-eval/scifact eval retrieval --beir ../shared/data/scifact

clean:
	rm -rf .ragline .ragline-eval .pytest_cache .mypy_cache .ruff_cache
