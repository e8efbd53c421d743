#!/usr/bin/env bash
# Server instructions per delivered event, one build against another, counted by
# callgrind (as bench/instructions.sh does for requests): one writer at a fixed RATE (200
# writes/s) with PIPELINE (1) in flight to SUBSCRIBERS (100) subscribers of one bucket,
# `--workers 1`. Each figure is the difference between a run of 4 s and one of 1 s, over
# the events delivered in between: start-up, connecting and shutdown cancel out. It is
# the fan-out benchmark's (bench/fanout.sh) cost per event without the noise of a shared
# machine; most of it is the connection's path for a pushed line.
#
#   BEFORE=/path/to/old/kv-server bash bench/fanout_instructions.sh
#
# AFTER defaults to this tree's release build; kv-bench is this tree's. Needs valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
BEFORE=${BEFORE:?set BEFORE to the kv-server binary to compare against}
AFTER=${AFTER:-$BIN/kv-server}
RATE=${RATE:-200}
PIPELINE=${PIPELINE:-1}
SUBSCRIBERS=${SUBSCRIBERS:-100}
log() { echo "$*" >&2; }
source "$ROOT/bench/lib.sh"
trap stop_all EXIT
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }

# run BINARY SECONDS: "events delivered, instructions" of one run.
run() {
  local port out events
  port=$(free_port)
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --port "$port" --workers 1 \
    2>/dev/null &
  PIDS+=($!)
  wait_port "$port"
  events=$("$BIN/kv-bench" --addr "127.0.0.1:$port" --subscribers "$SUBSCRIBERS" \
    --pipeline "$PIPELINE" --rate "$RATE" --duration "$2" --warmup 0.2 --json |
    python3 -c 'import json, sys
r = json.load(sys.stdin)
assert r["events_missing"] == 0 and r["errors"] == 0, r
print(r["writes_acked"] * r["subscribers_complete"])')
  kill -INT "${PIDS[-1]}"; wait "${PIDS[-1]}" || true
  PIDS=()
  echo "$events $(awk '/^(summary|totals):/ {print $2; exit}' "$out")"
  rm -f "$out"
}

echo "| build | instructions per delivered event |"
echo "|---|---|"
declare -A per=()
for label in before after; do
  binary=$BEFORE; [[ $label == after ]] && binary=$AFTER
  read -r e1 i1 <<<"$(run "$binary" 1)"
  read -r e2 i2 <<<"$(run "$binary" 4)"
  per[$label]=$(( (i2 - i1) / (e2 - e1) ))
  echo "| $label | ${per[$label]} |"
done
python3 -c "print(f'after ÷ before: {${per[after]} / ${per[before]}:.3f}×')"
