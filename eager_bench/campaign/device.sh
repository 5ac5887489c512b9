#!/usr/bin/env bash
# The device tool's command for the GPU campaign (README, "GPU campaign"). Run from the repository root there:
#   bash eager_bench/campaign/device.sh probe [PACK] [MINUTES]   stage + install + inputs + short EAGER timing runs
#   bash eager_bench/campaign/device.sh run   [PACK] [MINUTES]   the cells, under a MINUTES wall budget (default 8.5)
# PACK defaults to .device/campaign (name its part folder(s) in the call's `carry`). Results come back under $OUT.
# Extra arguments after MINUTES go to `eager-bench campaign run` (e.g. --max-parallel 10).
set -uo pipefail
mode="${1:-run}"; pack="${2:-.device/campaign}"; minutes="${3:-8.5}"
shift $(( $# < 3 ? $# : 3 ))
out="${OUT:-/tmp/eager-bench-campaign/out}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
py="$(command -v python3 || command -v python)"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv,noheader 2>/dev/null || true
"$py" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
case "$mode" in
  probe) exec "$py" -m eager_bench.cli campaign run --pack "$pack" --out "$out" --budget-minutes "$minutes" --probe "$@" ;;
  run)   exec "$py" -m eager_bench.cli campaign run --pack "$pack" --out "$out" --budget-minutes "$minutes" "$@" ;;
  *)     echo "usage: device.sh probe|run [PACK] [MINUTES] [campaign run options]" >&2; exit 2 ;;
esac
