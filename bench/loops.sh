#!/usr/bin/env bash
# Event loops that follow the load, against one loop and against the old default (one loop
# per core, clients spread evenly): memory mode, kv-bench at 50 connections ping-pong and
# pipelined (50 x 1, 50 x 32), the three servers alternating, ROUNDS rounds. Prints one
# JSON line per run to RESULTS and a median table (ops/s, p99, server CPU per request).
#
#   BEFORE=/path/to/kv-server-before-this-change bash bench/loops.sh
#
# AFTER defaults to this tree's release build; it runs once with its default loops and
# once with --event-loops 1. Every server it starts is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
BEFORE=${BEFORE:?set BEFORE to the kv-server binary with the old placement}
AFTER=${AFTER:-$ROOT/target/release/kv-server}
BENCH=${BENCH:-$ROOT/target/release/kv-bench}
RESULTS=${RESULTS:-$ROOT/bench/results/loops.jsonl}
SHAPES=${SHAPES:-50x1 50x32}
log() { echo "$*" >&2; }
source "$ROOT/bench/lib.sh"
trap stop_all EXIT

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    for label in old-default new-default one-loop; do
      binary=$AFTER; flags=()
      [[ $label == old-default ]] && binary=$BEFORE
      [[ $label == one-loop ]] && flags=(--event-loops 1)
      port=$(free_port)
      "$binary" --port "$port" "${flags[@]}" 2>/dev/null & PIDS+=($!)
      wait_port "$port"
      log "round $round: $label, $conns x $pipeline"
      "$BENCH" --addr "127.0.0.1:$port" --conns "$conns" --pipeline "$pipeline" \
        --duration "$DURATION" --warmup 1 --label "$label" --server-pid "${PIDS[-1]}" \
        --json >>"$RESULTS"
      stop_all
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| conns × in flight | server | ops/s, median (rounds) | p99 µs, median (rounds) | server CPU µs/op |")
print("|---|---|---|---|---|")
for shape in sorted({(r["conns"], r["pipeline"]) for r in rows}):
    for label in ("old-default", "new-default", "one-loop"):
        these = [r for r in rows if (r["conns"], r["pipeline"]) == shape and r["label"] == label]
        ops = [r["ops_per_sec"] for r in these]
        p99 = [r["latency"]["p99_us"] for r in these]
        cpu = statistics.median(r["cpu"]["server"] / 100 * 1e6 / r["ops_per_sec"] for r in these)
        show = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)
        print(f"| {shape[0]} × {shape[1]} | {label} | {statistics.median(ops):,.0f} ({show(ops)}) "
              f"| {statistics.median(p99):,.0f} ({show(p99)}) | {cpu:.2f} |")
PY
