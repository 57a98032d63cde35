#!/usr/bin/env bash
# Run the benchmarks of an area and print one line per figure:
#   name value unit
# Baselines are measured in the same run; compare runs by their ratios.
#
#   scripts/bench.sh        every area
#   scripts/bench.sh cf     the coupling facility (issue: the CF)
#
# Set BENCH_ARGS to pass flags to the benchmark programs (e.g. "-rounds 5").
set -euo pipefail
cd "$(dirname "$0")/.."
area=${1:-all}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

run_cf() {
  go build -o "$bin/cfbench" ./perf/cfbench
  # shellcheck disable=SC2086
  "$bin/cfbench" ${BENCH_ARGS:-}
}

case "$area" in
  cf) run_cf ;;
  all) run_cf ;;
  *) echo "unknown area $area (known: cf)" >&2; exit 2 ;;
esac
