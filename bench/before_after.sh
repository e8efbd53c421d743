#!/usr/bin/env bash
# Memory mode, one build against another: the same kv-bench load, builds alternating,
# ROUNDS rounds, in the shapes 1x1, 50x1 and 50x32 (connections x requests in flight),
# 90% GET. Prints one JSON line per run to RESULTS and a median table to stdout.
#
#   BEFORE=/path/to/old/kv-server bash bench/before_after.sh
#
# AFTER defaults to this tree's release build. Every server it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
BEFORE=${BEFORE:?set BEFORE to the kv-server binary to compare against}
AFTER=${AFTER:-$ROOT/target/release/kv-server}
BENCH=${BENCH:-$ROOT/target/release/kv-bench}
RESULTS=${RESULTS:-$ROOT/bench/results/before_after.jsonl}
SHAPES=${SHAPES:-1x1 50x1 50x32}

PID=""
# An `if`, not `&&`: as the EXIT trap, a false test would become the script's status.
stop() { if [[ -n $PID ]]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap stop EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    for label in before after; do
      binary=$BEFORE; [[ $label == after ]] && binary=$AFTER
      port=$(free_port)
      "$binary" --port "$port" 2>/dev/null & PID=$!
      wait_port "$port"
      echo "round $round: $label, $conns x $pipeline" >&2
      "$BENCH" --addr "127.0.0.1:$port" --conns "$conns" --pipeline "$pipeline" \
        --duration "$DURATION" --warmup 1 --label "$label" --server-pid "$PID" --json >>"$RESULTS"
      stop
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| conns × in flight | build | ops/s, median (all rounds) | server CPU µs/op | after ÷ before |")
print("|---|---|---|---|---|")
for shape in sorted({(r["conns"], r["pipeline"]) for r in rows}):
    med = {}
    for label in ("before", "after"):
        these = [r for r in rows if (r["conns"], r["pipeline"]) == shape and r["label"] == label]
        ops = statistics.median(r["ops_per_sec"] for r in these)
        cpu = statistics.median(r["cpu"]["server"] / 100 * 1e6 / r["ops_per_sec"] for r in these)
        med[label] = ops
        vals = ", ".join(f"{r['ops_per_sec']:,.0f}" for r in these)
        ratio = f"{ops / med['before']:.3f}×" if label == "after" else ""
        print(f"| {shape[0]} × {shape[1]} | {label} | {ops:,.0f} ({vals}) | {cpu:.2f} | {ratio} |")
PY
