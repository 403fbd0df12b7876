#!/usr/bin/env bash
# One-time setup: a virtual environment in .venv with the pinned CPU build of torch and
# everything else from pyproject.toml. llama-cpp-python compiles from source once per CPU (3-9 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
# llama.cpp is compiled for this CPU (-march=native) but without its AMX kernels: on a CPU with AMX (Sapphire Rapids
# and later) they crash in the first decode of the Q4_K_M models (SIGSEGV in ggml_backend_amx_mul_mat, an open
# llama.cpp bug). The wheel is built once per CPU into evolab's cache: pip's own wheel cache would hand back a wheel
# built without the flag, or for another CPU.
llama=$(grep -o '"llama-cpp-python[^"]*"' pyproject.toml | tr -d '"')
flags="-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8"
wheels=${EVOLAB_CACHE:-$HOME/.cache/evolab}/wheels/$( (grep -m1 '^flags' /proc/cpuinfo; echo "$llama $flags") | sha256sum | cut -c1-16)
if [ "$(cat .venv/llama-wheel 2>/dev/null)" != "$wheels" ]; then
  [ -d "$wheels" ] || { CMAKE_ARGS="$flags" python -m pip wheel -q --no-cache-dir --no-deps -w "$wheels.tmp" \
    "${llama%%\[*}==${llama##*==}" && mv "$wheels.tmp" "$wheels"; }
  python -m pip install -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
  echo "$wheels" > .venv/llama-wheel
fi
python -m pip install -q -e ".[test]"
# Fresh clones have no git identity; DVC experiments need one to commit.
git config user.email >/dev/null || git config user.email "evolab@localhost"
git config user.name >/dev/null || git config user.name "evolab"
