#!/usr/bin/env bash
# Run the benchmarks of an area and print one line per figure:
#   name value unit
# Baselines are measured in the same run; compare runs by their ratios.
#
#   scripts/bench.sh        every area
#   scripts/bench.sh cf     the coupling facility
#   scripts/bench.sh group  a group of three members with applications
#
# BENCH_ARGS passes flags to the cf program (e.g. "-rounds 5"),
# BENCH_ARGS_GROUP to the group program (e.g. "-n 500000 -recoveries 9").
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

run_group() {
  go build -o "$bin/groupbench" ./perf/groupbench
  # shellcheck disable=SC2086
  "$bin/groupbench" ${BENCH_ARGS_GROUP:-}
}

case "$area" in
  cf) run_cf ;;
  group) run_group ;;
  all) run_cf; run_group ;;
  *) echo "unknown area $area (known: cf, group)" >&2; exit 2 ;;
esac
