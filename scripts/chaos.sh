#!/usr/bin/env bash
# The fault-injection harness (package chaos, `go doc ./chaos`): two groups,
# bindings clients and a channel under a seeded nemesis, then a checker of
# every client's history. The environment passes through:
#   TORTURE=30m        faults for that long (any Go duration; default 20s)
#   CHAOS_SEED=n       repeat a run's choices (every run prints its seed)
#   CHAOS_DIR=dir      keep the run's histories, fault log and member logs in dir/chaos-<seed>
#   CHAOS_FAULTS=a,b   only these fault kinds (kill-member, cf-remove, ...)
#   CHAOS_CHANNEL=0    one group, no channel
#   CHAOS_FSYNC=1      fsync every history record
# Exit status 1 when the checker or the harness found an anomaly.
set -euo pipefail
cd "$(dirname "$0")/.."

# A long run has no test timeout (every wait of the harness is bounded).
timeout=15m
if [ -n "${TORTURE:-}" ]; then
  timeout=0
fi
exec go test -count=1 -run '^TestChaos$' -v -timeout "$timeout" ./chaos/
