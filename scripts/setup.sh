#!/usr/bin/env bash
# One-time setup: a virtual environment in .venv with the pinned CPU build of torch and
# everything else from pyproject.toml. llama-cpp-python compiles from source (~9 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
# Fresh clones have no git identity; DVC experiments need one to commit.
git config user.email >/dev/null || git config user.email "evolab@localhost"
git config user.name >/dev/null || git config user.name "evolab"
