#!/usr/bin/env bash
# A lease on the lent GPU machine, rehearsed on this CPU: the machine's Python (3.12) in a virtual environment
# holding only packages of its image (benchmarks/gpu_machine.py checks it), the carry made and installed as a
# lease installs it (benchmarks/gpu_carry.py, benchmarks/gpu_lease.sh), then the lease's two calls with --dry-run:
# a missing package fails here, not during the lease. Writes reports/gpu_paths_dryrun.{md,json}, and $REHEARSAL/out
# as the lease writes $OUT.
#   bash benchmarks/gpu_rehearsal.sh [gpu_paths.py arguments]      (~10 min, the first time ~5 more to install)
# PYTHON312 names a Python 3.12 interpreter (default python3.12); REHEARSAL, the folder it works in.
set -euo pipefail
cd "$(dirname "$0")/.."
REHEARSAL=${REHEARSAL:-/tmp/evolab-gpu-rehearsal}
PYTHON312=${PYTHON312:-python3.12}
if [ ! -x "$REHEARSAL/venv/bin/python" ]; then
  "$PYTHON312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null ||
    { echo "gpu_rehearsal: '$PYTHON312' is not a Python 3.12: set PYTHON312 to one (the lent machine runs 3.12)" >&2; exit 2; }
  "$PYTHON312" -m venv "$REHEARSAL/venv"
fi
"$REHEARSAL/venv/bin/python" -m pip install -q --upgrade pip pyyaml
"$REHEARSAL/venv/bin/python" benchmarks/gpu_machine.py
.venv/bin/python benchmarks/gpu_carry.py
rm -rf "$REHEARSAL/site" "$REHEARSAL/work" "$REHEARSAL/out"
for call in 1 2; do
  SITE="$REHEARSAL/site" WORK="$REHEARSAL/work" OUT="$REHEARSAL/out" PYTHON="$REHEARSAL/venv/bin/python" \
    bash benchmarks/gpu_lease.sh --dry-run --call "$call" "$@"
done
