#!/usr/bin/env bash
# The four methods side by side on one profile (default: smoke), as reports/methods_smoke.md was made:
# code_evol, oss_instruct, wavecoder (with the embedded teacher it stops: "nothing to train on"),
# wavecoder without the LLM discriminator, magicoder_s, then oss_instruct again (runs only `log`).
# Usage: bash scripts/compare_methods.sh [PROFILE]; logs and the stages each run ran go to logs/methods/.
set -uo pipefail
cd "$(dirname "$0")/.."
profile=${1:-smoke}
logs=logs/methods
mkdir -p "$logs"
bash scripts/setup.sh > "$logs/setup.log" 2>&1 && . .venv/bin/activate || { echo "setup failed: $logs/setup.log"; exit 1; }
run() {
  local name=$1; shift
  local start=$(date +%s)
  dvc exp run -S "profile=$profile" "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - start )) s ran: $(grep -o "Running stage '[^']*'" "$logs/$name.log" | cut -d"'" -f2 | tr '\n' ' ')"
  grep -h "error:" "$logs/$name.log" | head -2
}
run code_evol
run oss_instruct -S method=oss_instruct
run wavecoder -S method=wavecoder
run wavecoder_rules_only -S method=wavecoder -S method.discriminate=false
run magicoder_s -S method=magicoder_s
run oss_instruct_again -S method=oss_instruct
python -m evolab.reporting.report --source dvc --out "reports/methods_$profile" > "$logs/report_dvc.md"
python -m evolab.reporting.report --source mlflow --out "$logs/from_mlflow/methods_$profile" > "$logs/report_mlflow.md"
diff <(tail -n +4 "$logs/report_dvc.md") <(tail -n +4 "$logs/report_mlflow.md") && echo "the report is the same from DVC and MLflow"
