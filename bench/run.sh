#!/usr/bin/env bash
# Builds the release proxy and the benchmark, then runs the benchmark against the real binary.
#
#   bench/run.sh smoke   a few streams of each kind, seconds; exits non-zero if any reply is
#                        incomplete or wrong, or if 20 clients that never read do not stall the
#                        upstream and get it closed when they leave, or if a client that leaves
#                        mid-reply does not get its upstream closed. Never asserts on timings or
#                        memory (CI runs this).
#   bench/run.sh full    the matrix published in BENCHMARKS.md (1 to 10,000 streams, 1,000
#                        clients that never read, JSON mode at fixed rates, cancel latency,
#                        connection churn, cold starts), minutes.
#
# Extra arguments go to the driver, e.g. `bench/run.sh full --only steady-1000 --perf`.
# Results land in target/bench/<mode>/ (report.md, results.json, the processes' logs).
# Set DEEPCHAT_BENCH_PROXY to measure another proxy binary (e.g. one built from an older commit).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-smoke}"
[ $# -gt 0 ] && shift
case "$mode" in
  smoke) limit=300 ;;
  full) limit=1800 ;;
  *) echo "usage: bench/run.sh [smoke|full] [driver flags…]" >&2; exit 2 ;;
esac

cargo build --release -p deepchat-proxy -p deepchat-bench

target="${CARGO_TARGET_DIR:-target}"
proxy="${DEEPCHAT_BENCH_PROXY:-$target/release/deepchat-proxy}"
# Thousands of sockets per process: the soft open-files limit up to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

label="built from the working tree"
if [ -z "${DEEPCHAT_BENCH_PROXY:-}" ] && commit="$(git rev-parse --short HEAD 2>/dev/null)"; then
  label="commit $commit"
  if [ -n "$(git status --porcelain -- src adapters Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    label="$label plus uncommitted changes"
  fi
fi

exec "$target/release/deepchat-bench" run --mode "$mode" --proxy "$proxy" \
  --out "$target/bench/$mode" --label "${DEEPCHAT_BENCH_LABEL:-$label}" --max-seconds "$limit" "$@"
