#!/usr/bin/env bash
# Compare the benchmarks of an area between a git revision (before) and the
# working tree (after), measured side by side in one run: the two builds
# alternate, round by round, so that the machine's drift falls on both
# alike. Prints "name value unit" lines for each figure:
#
#   NAME.before   median of the before build's rounds
#   NAME.after    median of the after build's rounds
#   NAME.after_vs_before  after / before (for a time, above 1 is slower)
#
#   scripts/benchcmp.sh REV AREA [ROUNDS]   AREA: cf, group, persist, channel
#
# Every round's figures go to standard error as they come. Each round
# runs the area's program once (with BENCH_ARGS_<AREA> as in
# scripts/bench.sh, e.g. BENCH_ARGS="-rounds 1"). ROUNDS defaults to 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/benchcmp.sh REV AREA [ROUNDS]}
area=${2:?usage: scripts/benchcmp.sh REV AREA [ROUNDS]}
rounds=${3:-3}
case "$area" in
  cf) pkg=./perf/cfbench args=${BENCH_ARGS:-} ;;
  group) pkg=./perf/groupbench args=${BENCH_ARGS_GROUP:-} ;;
  persist) pkg=./perf/persistbench args=${BENCH_ARGS_PERSIST:-} ;;
  channel) pkg=./perf/chanbench args=${BENCH_ARGS_CHANNEL:-} ;;
  *) echo "unknown area $area (known: cf, group, persist, channel)" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
cleanup() {
  git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git worktree add --detach -q "$tmp/src" "$rev"
(cd "$tmp/src" && go build -o "$tmp/before" "$pkg")
go build -o "$tmp/after" "$pkg"

for i in $(seq "$rounds"); do
  for b in before after; do
    echo "# round $i: $b" >&2
    # shellcheck disable=SC2086
    "$tmp/$b" $args | awk -v b="$b" 'NF == 3 && $1 !~ /^#/ { print b, $1, $2, $3 }' | tee -a "$tmp/figures" >&2
  done
done

awk '
  { key = $2; unit[key] = $4; n[key, $1]++; v[key, $1, n[key, $1]] = $3; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
  function median(key, b,    m, i, j, t, a) {
    m = n[key, b]
    for (i = 1; i <= m; i++) a[i] = v[key, b, i]
    for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
  }
  END {
    for (i = 1; i <= k; i++) {
      key = order[i]
      if (!n[key, "before"] || !n[key, "after"]) continue
      b = median(key, "before"); a = median(key, "after")
      printf "%s.before %g %s\n", key, b, unit[key]
      printf "%s.after %g %s\n", key, a, unit[key]
      if (b != 0) printf "%s.after_vs_before %.3f ratio\n", key, a / b
    }
  }' "$tmp/figures"
