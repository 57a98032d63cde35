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
#   scripts/bench.sh requests request managers (package request): a request
#                             calling three servers, per recovery mode, against
#                             plain request/reply; a manager's takeover
#   scripts/bench.sh smds     messages whose bodies go to shared message data
#                             sets, against the same through the CF with large
#                             elements and against raw file write + read
#   scripts/bench.sh units    a recovery unit (the example ledger, REPLICAS(2)):
#                             throughput against a plain consumer doing the
#                             same work; failover after SIGKILLs of the primary;
#                             a 64 MiB state transferred to a new secondary
#   scripts/bench.sh amqp     AMQP 0-9-1 through amqp091-go, against RabbitMQ
#                             too when rabbitmq-server is installed (the
#                             script starts and stops its own instance on
#                             free loopback ports; it never installs it)
#
# BENCH_ARGS passes flags to the cf program (e.g. "-rounds 5"),
# BENCH_ARGS_GROUP to the group program (e.g. "-n 500000 -recoveries 9"),
# BENCH_ARGS_CHANNEL to the channel program (e.g. "-rounds 1 -kills 5"),
# BENCH_ARGS_PERSIST to the persistence program (e.g. "-n 50000 -rounds 1"),
# BENCH_ARGS_AMQP to the AMQP program (e.g. "-rounds 5 -duration 5s"),
# BENCH_ARGS_REQUESTS to the request program (e.g. "-n 5000 -kills 9"),
# BENCH_ARGS_SMDS to the data set program (e.g. "-rounds 1 -mib 64"),
# BENCH_ARGS_UNITS to the recovery unit program (e.g. "-n 50000 -kills 9").
set -euo pipefail
cd "$(dirname "$0")/.."
area=${1:-all}
bin=$(mktemp -d)
rabbit_pgid="" epmd_pid=""
cleanup() {
  stop_rabbitmq
  rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

run_units() {
  go build -o "$bin/unitbench" ./perf/unitbench
  # shellcheck disable=SC2086
  "$bin/unitbench" ${BENCH_ARGS_UNITS:-}
}

run_smds() {
  go build -o "$bin/smdsbench" ./perf/smdsbench
  # shellcheck disable=SC2086
  "$bin/smdsbench" ${BENCH_ARGS_SMDS:-}
}

run_requests() {
  go build -o "$bin/requestbench" ./perf/requestbench
  # shellcheck disable=SC2086
  "$bin/requestbench" ${BENCH_ARGS_REQUESTS:-}
}

# free_port prints a loopback TCP port nobody listens on now, under the
# ephemeral range (32768-60999), where outgoing connections take theirs.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

# start_rabbitmq starts a RabbitMQ node of its own under $bin/rabbitmq (its
# own node name, ports, epmd, data, logs and configuration; nothing of a
# system instance is used or touched), waits until it accepts AMQP, and
# sets rabbit_url. It returns 1 (with the reason on stderr) when it cannot.
start_rabbitmq() {
  local d="$bin/rabbitmq" port dist epmd_port i
  command -v epmd >/dev/null || { echo "bench: epmd not found" >&2; return 1; }
  mkdir -p "$d"
  port=$(free_port) dist=$(free_port) epmd_port=$(free_port)
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\n' "$port" >"$d/rabbitmq.conf"
  echo '[].' >"$d/enabled_plugins"
  # An epmd of its own, on loopback, so that the node needs nothing of the
  # machine's and leaves nothing behind.
  epmd -port "$epmd_port" -address 127.0.0.1 >"$d/epmd.log" 2>&1 &
  epmd_pid=$!
  # RabbitMQ's defaults otherwise (its schedulers' busy wait included: an
  # idle node spins for well under 1% of a core, and without it the node
  # is much slower here).
  (
    export HOME="$d" RABBITMQ_NODENAME="qmgrbench$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
      RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist" ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
      RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_PID_FILE="$d/pid" \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/server.log" 2>&1
  ) &
  rabbit_pgid=$! # setsid: the server's process group and session are its own
  for i in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      rabbit_url="amqp://guest:guest@127.0.0.1:$port/"
      return 0
    fi
    if ! kill -0 "$rabbit_pgid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "bench: RabbitMQ did not start; its log:" >&2
  tail -n 30 "$d/server.log" >&2 || true
  stop_rabbitmq
  return 1
}

# stop_rabbitmq stops the node start_rabbitmq started (SIGTERM to its
# process group, SIGKILL after 30 s) and its epmd.
stop_rabbitmq() {
  local i
  if [[ -n $rabbit_pgid ]]; then
    kill -TERM -- "-$rabbit_pgid" 2>/dev/null || true
    for i in $(seq 300); do
      kill -0 -- "-$rabbit_pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$rabbit_pgid" 2>/dev/null || true
    wait "$rabbit_pgid" 2>/dev/null || true
    rabbit_pgid=""
  fi
  if [[ -n $epmd_pid ]]; then
    kill "$epmd_pid" 2>/dev/null || true
    wait "$epmd_pid" 2>/dev/null || true
    epmd_pid=""
  fi
}

run_amqp() {
  local rabbit_url="" args=()
  go build -o "$bin/amqpbench" ./perf/amqpbench
  if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    if start_rabbitmq; then
      args=(-rabbitmq-url "$rabbit_url")
    else
      echo "# ratios vs RabbitMQ missing: RabbitMQ did not start"
    fi
  fi
  # shellcheck disable=SC2086
  "$bin/amqpbench" "${args[@]}" ${BENCH_ARGS_AMQP:-}
  stop_rabbitmq
}

case "$area" in
  cf) run_cf ;;
  group) run_group ;;
  channel) run_channel ;;
  persist) run_persist ;;
  amqp) run_amqp ;;
  requests) run_requests ;;
  smds) run_smds ;;
  units) run_units ;;
  all) run_cf; run_group; run_channel; run_persist; run_requests; run_units; run_smds; run_amqp ;;
  *) echo "unknown area $area (known: cf, group, channel, persist, requests, units, smds, amqp)" >&2; exit 2 ;;
esac
