#!/usr/bin/env bash
# Per-token profile of the release proxy under a fixed, checked load (issue 21): a fresh mock
# upstream and proxy, eight warm-up conversations, then `deepchat-bench drive` (default 20
# streams × 200 tokens at 20 tokens/s each, every token checked) with the proxy measured only
# during the drive. Figures that do not depend on how busy the machine is:
#
#   bench/profile.sh callgrind [drive flags…]  instructions per token, calls per token of
#                                              malloc/free/…, the top inclusive functions
#   bench/profile.sh strace [drive flags…]     system calls per token (strace -c -f)
#   bench/profile.sh perfstat [drive flags…]   system calls and context switches per token at
#                                              full speed (perf stat on tracepoints)
#   bench/profile.sh plain [drive flags…]      just the run (proxy CPU from /proc)
#
# Results land in target/profile/<tool>/ (summary.txt, the raw tool output, logs).
# DEEPCHAT_BENCH_PROXY=/path/to/deepchat-proxy measures another binary (an older commit).
set -euo pipefail
cd "$(dirname "$0")/.."

tool="${1:-callgrind}"
[ $# -gt 0 ] && shift
case "$tool" in callgrind | strace | perfstat | plain) ;; *)
  echo "usage: bench/profile.sh [callgrind|strace|perfstat|plain] [drive flags…]" >&2
  exit 2
  ;;
esac

target="${CARGO_TARGET_DIR:-target}"
[ -n "${PROFILE_NO_BUILD:-}" ] || cargo build --release -p deepchat-proxy -p deepchat-bench
proxy="${DEEPCHAT_BENCH_PROXY:-$target/release/deepchat-proxy}"
bench="$target/release/deepchat-bench"
out="$target/profile/$tool"
rm -rf "$out" && mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The mock lives while its stdin is open.
mkfifo "$out/mock.stdin"
"$bench" mock --listen 127.0.0.1:0 --max-seconds 900 <"$out/mock.stdin" >"$out/mock.out" 2>"$out/mock.log" &
pids+=($!)
exec 3>"$out/mock.stdin"
for _ in $(seq 100); do grep -q listening "$out/mock.out" 2>/dev/null && break; sleep 0.1; done
mock="$(sed -n 's/^listening //p' "$out/mock.out")"
[ -n "$mock" ] || { echo "the mock did not start" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
wrap=()
case "$tool" in
  callgrind) wrap=(valgrind --tool=callgrind --trace-children=yes --instr-atstart=no --callgrind-out-file="$out/callgrind.out") ;;
esac
RUST_LOG=info DEEPCHAT_PROXY_RATE_LIMIT=0 DEEPCHAT_PROXY_MAX_CONNECTIONS_PER_IP=0 \
  "${wrap[@]}" "$proxy" --listen "127.0.0.1:$port" openai --base-url "http://$mock/v1" --model bench \
  2>"$out/proxy.log" &
ppid=$!
pids+=("$ppid")
for _ in $(seq 300); do (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# Warm-up: connections, pools, lazily built state; not measured.
"$bench" drive --proxy "127.0.0.1:$port" --streams 8 --tokens 20 --rate 0 --ramp-ms 0 --first-id 1000000 >/dev/null

cpu() { awk '{print $14 + $15}' "/proc/$ppid/stat"; }
case "$tool" in
  callgrind) callgrind_control -i on "$ppid" >/dev/null ;;
  strace)
    strace -c -f -p "$ppid" -o "$out/strace.txt" &
    spid=$!
    sleep 1
    ;;
  perfstat)
    events=raw_syscalls:sys_enter,context-switches,task-clock
    for call in sendto recvfrom epoll_wait futex write writev read; do events="$events,syscalls:sys_enter_$call"; done
    perf stat -x, -e "$events" -p "$ppid" -o "$out/perfstat.csv" &
    spid=$!
    sleep 0.5
    ;;
esac
before="$(cpu)"
"$bench" drive --proxy "127.0.0.1:$port" "$@" | tee "$out/drive.txt"
after="$(cpu)"
case "$tool" in
  callgrind) callgrind_control -i off "$ppid" >/dev/null ;;
  strace | perfstat) kill -INT "$spid" && wait "$spid" || true ;;
esac
kill -TERM "$ppid"
wait "$ppid" || true

tokens="$(sed -n 's/.*tokens=\([0-9]*\).*/\1/p' "$out/drive.txt")"
frames="$(sed -n 's/.*frames=\([0-9]*\).*/\1/p' "$out/drive.txt")"
ticks="$(getconf CLK_TCK)"
{
  echo "proxy: $proxy"
  echo "tokens=$tokens frames=$frames frames/token=$(python3 -c "print(round($frames/$tokens, 3))")"
  echo "proxy CPU µs/token (with $tool attached): $(python3 -c "print(round(($after-$before)/$ticks*1e6/$tokens, 2))")"
  case "$tool" in
    callgrind) python3 bench/callgrind_per_token.py "$out/callgrind.out" "$tokens" ;;
    strace) python3 bench/strace_per_token.py "$out/strace.txt" "$tokens" ;;
    perfstat)
      awk -F, -v t="$tokens" '$1 ~ /^[0-9.]+$/ { printf "  %-34s %10.3f per token\n", $3, $1 / t }' "$out/perfstat.csv"
      ;;
  esac
} | tee "$out/summary.txt"
