#!/usr/bin/env bash
# What each Lambda image installs on top of the base image (public.ecr.aws/lambda/python:3.11), measured by
# installing the same locked requirements that deploy/Dockerfile installs into a scratch folder.
# Usage: bash bench/image_size.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for target in "query:--extra aws" "ingest:--extra aws --extra ingest" "local (make setup):--all-extras"; do
  name=${target%%:*}; extras=${target#*:}
  # shellcheck disable=SC2086
  uv export --frozen --no-dev $extras --no-emit-project --no-hashes -o "$out/req.txt" >/dev/null 2>&1
  if [[ $name == local* ]]; then grep -v '^llama-cpp-python' "$out/req.txt" > "$out/r2.txt"; mv "$out/r2.txt" "$out/req.txt"; fi
  uv pip install --quiet --python-platform x86_64-manylinux_2_28 --python-version 3.11 \
    --target "$out/$name" -r "$out/req.txt" >/dev/null
  uv pip install --quiet --no-deps --target "$out/$name" . >/dev/null
  printf '%-20s %s\n' "$name" "$(du -sh "$out/$name" | cut -f1)"
done
echo "(local excludes the llama-cpp-python wheel, built on the machine: $(du -sh ~/.cache/ragline/wheels 2>/dev/null | cut -f1))"
