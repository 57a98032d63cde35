#!/usr/bin/env bash
# Run the benchmarks of an area and print one line per figure:
#   name value unit
# Baselines are measured in the same run; compare runs by their ratios.
#
#   scripts/bench.sh        every area
#   scripts/bench.sh cf     the coupling facility
#   scripts/bench.sh group  a group of three members with applications
#   scripts/bench.sh channel  a shared sender channel to a group of one
#   scripts/bench.sh persist  persistent puts through a member's recovery log
#
# BENCH_ARGS passes flags to the cf program (e.g. "-rounds 5"),
# BENCH_ARGS_GROUP to the group program (e.g. "-n 500000 -recoveries 9"),
# BENCH_ARGS_CHANNEL to the channel program (e.g. "-rounds 1 -kills 5"),
# BENCH_ARGS_PERSIST to the persistence program (e.g. "-n 50000 -rounds 1").
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

run_channel() {
  go build -o "$bin/chanbench" ./perf/chanbench
  # shellcheck disable=SC2086
  "$bin/chanbench" ${BENCH_ARGS_CHANNEL:-}
}

run_persist() {
  go build -o "$bin/persistbench" ./perf/persistbench
  # shellcheck disable=SC2086
  "$bin/persistbench" ${BENCH_ARGS_PERSIST:-}
}

case "$area" in
  cf) run_cf ;;
  group) run_group ;;
  channel) run_channel ;;
  persist) run_persist ;;
  all) run_cf; run_group; run_channel; run_persist ;;
  *) echo "unknown area $area (known: cf, group, channel, persist)" >&2; exit 2 ;;
esac
