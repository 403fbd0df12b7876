#!/usr/bin/env bash
# On the lent GPU machine (docs/gpu.md has the calls): install the carried wheels (.gpu/, made by
# benchmarks/gpu_carry.py) as the device tool's notes say, then run benchmarks/gpu_paths.py (which goes offline) with
# the carried tokenizer, its work kept in $WORK for the next call. Arguments go to gpu_paths.py.
set -uo pipefail
cd "$(dirname "$0")/.."
SITE=${SITE:-/tmp/site}
WORK=${WORK:-/tmp/evolab-gpu}
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/wheels/*.whl || exit
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_paths.py --tokenizer .gpu/tokenizer --work "$WORK" "$@"
