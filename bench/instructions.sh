#!/usr/bin/env bash
# Server instructions per request, one build against another, counted by callgrind: unlike
# ops/s and CPU time on a shared VM, the count does not move with the neighbours, so a
# change of a few percent in the per-request path shows. Memory mode, one event loop, a
# 90% GET / 10% PUT mix over 100 keys, at 1 and at 32 requests in flight on one
# connection (bench/instructions_client.py). Each figure is the difference between a run of
# 12,000 and one of 2,000 requests, over 10,000: start-up and shutdown cancel out.
#
#   BEFORE=/path/to/old/kv-server bash bench/instructions.sh
#
# AFTER defaults to this tree's release build. Needs valgrind (apt-get install valgrind).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${BEFORE:?set BEFORE to the kv-server binary to compare against}
AFTER=${AFTER:-$ROOT/target/release/kv-server}
log() { echo "$*" >&2; }
source "$ROOT/bench/lib.sh"
trap stop_all EXIT
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }

# instructions BINARY REQUESTS IN_FLIGHT: the server's total instruction count.
instructions() {
  local port out
  port=$(free_port)
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --port "$port" --workers 1 \
    2>/dev/null &
  PIDS+=($!)
  wait_port "$port"
  python3 "$ROOT/bench/instructions_client.py" "$port" "$2" "$3"
  kill -INT "${PIDS[-1]}"; wait "${PIDS[-1]}" || true
  PIDS=()
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
  rm -f "$out"
}

echo "| in flight | before | after | after ÷ before |"
echo "|---|---|---|---|"
for depth in 1 32; do
  declare -A per=()
  for label in before after; do
    binary=$BEFORE; [[ $label == after ]] && binary=$AFTER
    low=$(instructions "$binary" 2000 "$depth")
    high=$(instructions "$binary" 12000 "$depth")
    per[$label]=$(( (high - low) / 10000 ))
  done
  ratio=$(python3 -c "print(f'{${per[after]} / ${per[before]}:.3f}×')")
  echo "| $depth | ${per[before]} | ${per[after]} | $ratio |"
done
