#!/usr/bin/env bash
# Event loops that follow the load: the default (as many active loops as the load needs,
# connections moving between them) against fixed loop counts (--event-loops 1; two with
# --min-active-event-loops 2) and Redis, in memory mode, kv-bench at 50 connections
# ping-pong, 50 x 32 pipelined and 1,000 connections ping-pong, the servers alternating
# in an order rotated each round, ROUNDS rounds. Midway through each kv-server run it asks
# `INFO threads` (active loops, connections moved, clients per loop). Prints one JSON line
# per run to RESULTS and a median table (ops/s, p99, server CPU per request, errors, and
# the ratios the goals are stated in).
#
#   bash bench/loops.sh
#   BEFORE=/path/to/an-older-kv-server bash bench/loops.sh   # adds that build's default
#
# AFTER defaults to this tree's release build. Installs redis-server if missing. Every
# server it starts is stopped by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
BEFORE=${BEFORE:-}
AFTER=${AFTER:-$ROOT/target/release/kv-server}
BENCH=${BENCH:-$ROOT/target/release/kv-bench}
RESULTS=${RESULTS:-$ROOT/bench/results/loops.jsonl}
SHAPES=${SHAPES:-50x1 50x32 1000x1}
log() { echo "$*" >&2; }
source "$ROOT/bench/lib.sh"
trap stop_all EXIT
install_redis
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

LABELS=(default one-loop two-loops redis)
[[ -n $BEFORE ]] && LABELS+=(before)

# start_server LABEL PORT: starts the server under test in the background (`exec`, so
# that the PID recorded is the server's own, for stopping it and reading its CPU time).
start_server() {
  (
    exec >/dev/null 2>&1
    case $1 in
      default) exec "$AFTER" --port "$2" ;;
      one-loop) exec "$AFTER" --port "$2" --event-loops 1 ;;
      two-loops) exec "$AFTER" --port "$2" --event-loops 2 --min-active-event-loops 2 ;;
      before) exec "$BEFORE" --port "$2" ;;
      redis) exec redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$2" \
        --maxclients 20000 ;;
    esac
  ) &
  PIDS+=($!)
}

# threads PORT: kv-server's `INFO threads` as one line of name=value pairs.
threads() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"INFO threads\r\n")
data = b""
while not data.endswith(b"OK\r\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(" ".join(l.replace(":", "=", 1) for l in data.decode().splitlines() if ":" in l))
PY
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    # Rotated each round, so that no server always follows the same one (at 1,000
    # connections the previous run's sockets are still closing).
    shift=$(( (round - 1) % ${#LABELS[@]} ))
    for label in "${LABELS[@]:shift}" "${LABELS[@]:0:shift}"; do
      port=$(free_port)
      start_server "$label" "$port"
      wait_port "$port"
      proto=kv; [[ $label == redis ]] && proto=redis
      log "round $round: $label, $conns x $pipeline"
      seen=$(mktemp); probe=
      if [[ $proto == kv ]]; then
        (sleep "$(( (DURATION + 1) / 2 + 1 ))"; threads "$port" >"$seen" 2>/dev/null) &
        probe=$!
      fi
      run=$("$BENCH" --addr "127.0.0.1:$port" --proto "$proto" --conns "$conns" \
        --pipeline "$pipeline" --duration "$DURATION" --warmup 1 --label "$label" \
        --server-pid "${PIDS[-1]}" --json)
      [[ -n $probe ]] && { wait "$probe" || true; }
      python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["threads"]=open(sys.argv[2]).read().strip(); print(json.dumps(r))' \
        "$run" "$seen" >>"$RESULTS"
      rm -f "$seen"
      stop_all
    done
  done
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
labels = [l for l in ("default", "one-loop", "two-loops", "before", "redis") if any(r["label"] == l for r in rows)]
print("| conns × in flight | server | ops/s, median (rounds) | p99 µs, median (rounds) | server CPU µs/op | errors | INFO threads midway (last round) |")
print("|---|---|---|---|---|---|---|")
fig = {}
for shape in sorted({(r["conns"], r["pipeline"]) for r in rows}):
    for label in labels:
        these = [r for r in rows if (r["conns"], r["pipeline"]) == shape and r["label"] == label]
        if not these:
            continue
        ops = [r["ops_per_sec"] for r in these]
        p99 = [r["latency"]["p99_us"] for r in these]
        cpu = med(r["cpu"]["server"] / 100 * 1e6 / r["ops_per_sec"] for r in these)
        errors = sum(r["errors"] + r["conn_errors"] for r in these)
        fig[shape, label] = (med(ops), med(p99), cpu)
        show = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)
        seen = these[-1].get("threads", "")
        print(f"| {shape[0]} × {shape[1]} | {label} | {med(ops):,.0f} ({show(ops)}) "
              f"| {med(p99):,.0f} ({show(p99)}) | {cpu:.2f} | {errors} | {seen} |")
print()
print("| conns × in flight | default ÷ Redis, ops/s | p99: default / Redis µs | CPU/op: default ÷ Redis | best fixed | default ÷ best fixed: ops/s, p99 |")
print("|---|---|---|---|---|---|")
for shape in sorted({s for s, _ in fig}):
    if (shape, "default") not in fig or (shape, "redis") not in fig:
        continue
    d, r = fig[shape, "default"], fig[shape, "redis"]
    fixed = [l for l in ("one-loop", "two-loops") if (shape, l) in fig]
    best = max(fixed, key=lambda l: fig[shape, l][0])
    b = fig[shape, best]
    print(f"| {shape[0]} × {shape[1]} | {d[0] / r[0]:.2f}× | {d[1]:,.0f} / {r[1]:,.0f} | 1/{r[2] / d[2]:.2f} "
          f"| {best} | {d[0] / b[0]:.3f}×, {d[1] / b[1]:.2f}× |")
PY
