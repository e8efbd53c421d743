#!/usr/bin/env bash
# Subscriptions side by side: one writer publishing 16-byte values to SUBSCRIBERS (100)
# subscribers of one bucket (kv-server: SUBSCRIBE bucket / PUT; Redis: SUBSCRIBE channel /
# PUBLISH), the writer keeping 8, then 1, writes in flight, flat out. kv-server (release,
# default settings) and redis-server (no persistence) alternate, a fresh server for every
# run, ROUNDS rounds. Prints the side-by-side (events delivered per second, publish-to-
# delivery p50/p99, server CPU per delivered event, drops) with ratios against the
# targets, writes it to BENCHMARKS.md (between the fanout.sh markers) and one JSON line
# per run to bench/results/fanout.jsonl.
#
#   bash bench/fanout.sh                      # ROUNDS=3 DURATION=5 WARMUP=1 SUBSCRIBERS=100
#   ROUNDS=1 DURATION=2 OUT=/dev/null bash bench/fanout.sh   # a quick look
#
# It installs redis-server if missing (apt-get), waits (up to QUIET_WAIT seconds, default
# 600) for other builds (rustc, cargo) to finish so the numbers come from a quiet machine,
# and says in its output if they did not. Only the servers it started are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SUBSCRIBERS=${SUBSCRIBERS:-100}
SHAPES=${SHAPES:-8 1}
QUIET_WAIT=${QUIET_WAIT:-600}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS=${RESULTS:-$ROOT/bench/results/fanout.jsonl}

log() { printf '[fanout %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
install_redis
if [[ -z ${SKIP_BUILD:-} ]]; then
  log "building release binaries"
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p kv-server -p kv-bench
fi
wait_quiet "$QUIET_WAIT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_START=$(busy_builds)

# start_server NAME → sets PORT and PID.
start_server() {
  PORT=$(free_port)
  case $1 in
    kv-server) "$BIN/kv-server" --port "$PORT" 2>/dev/null & ;;
    redis) redis-server --save '' --appendonly no --bind 127.0.0.1 --port "$PORT" \
        --maxclients 20000 >/dev/null & ;;
  esac
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
SERVERS=(kv-server redis)
started=$(date +%s)
for round in $(seq "$ROUNDS"); do
  for pipeline in $SHAPES; do
    order=("${SERVERS[@]}")
    (( round % 2 == 0 )) && order=(redis kv-server)
    for server in "${order[@]}"; do
      start_server "$server"
      proto=kv; [[ $server == redis ]] && proto=redis
      log "round $round: $server, 1 writer x $pipeline in flight -> $SUBSCRIBERS subscribers"
      "$BIN/kv-bench" --proto "$proto" --label "$server" --addr "127.0.0.1:$PORT" \
        --subscribers "$SUBSCRIBERS" --conns 1 --pipeline "$pipeline" --value-size 16 \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$PID" --json >>"$RESULTS"
      stop_all
    done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_builds)
ELAPSED=$(( $(date +%s) - started ))

SECTION=$(python3 - "$RESULTS" <<PY
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r.get("kind") == "fanout"]
med = statistics.median
def pick(label, pipeline):
    return [r for r in rows if r["label"] == label and r["pipeline"] == pipeline]
def fmt(x, digits=0):
    return f"{x:,.{digits}f}"
def ns(r):
    return r["server_ns_per_event"] if r["server_ns_per_event"] is not None else float("nan")
print("\`ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP SUBSCRIBERS=$SUBSCRIBERS bash bench/fanout.sh\` "
      "($ROUNDS rounds of ${DURATION} s after ${WARMUP} s warm-up, servers alternating, a fresh "
      "server each run; ${ELAPSED} s; commit \`$(git -C "$ROOT" rev-parse --short HEAD)\`; "
      "load average $LOAD_START at the start, $LOAD_END at the end; "
      "other builds running: $BUSY_START at the start, $BUSY_END at the end).")
print()
print("Servers: \`target/release/kv-server --port \$PORT\` (default settings) and "
      "\`redis-server --save '' --appendonly no --bind 127.0.0.1 --port \$PORT --maxclients 20000\` "
      f"({'$(redis-server --version | awk '{print $3}')'}). Load: \`kv-bench --proto kv|redis "
      "--subscribers $SUBSCRIBERS --conns 1 --pipeline P --value-size 16 --duration $DURATION "
      "--warmup $WARMUP --server-pid \$PID --json\`: one writer, $SUBSCRIBERS subscribers, one "
      "generator thread on the same 2 cores as the server. Each value is the writer's send "
      "time; latency is from it to the read that brought the event. Medians over the rounds "
      "(all rounds in parentheses).")
print()
print("| in flight | server | events delivered/s | p50 µs | p99 µs | server CPU ns/event | writes/s | drops | missing | ÷ redis, events/s | ÷ redis, CPU/event | ÷ redis, p99 | others' CPU, max % of a core |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for pipeline in sorted({r["pipeline"] for r in rows}, reverse=True):
    redis = pick("redis", pipeline)
    for label in ("kv-server", "redis"):
        these = pick(label, pipeline)
        if not these:
            continue
        ev = [r["events_per_sec"] for r in these]
        p50 = med(r["delivery_latency"]["p50_us"] for r in these)
        p99 = [r["delivery_latency"]["p99_us"] for r in these]
        cpu = [ns(r) for r in these]
        writes = med(r["writes_per_sec"] for r in these)
        drops = sum(r["dropped_subscribers"] for r in these)
        missing = sum(r["events_missing"] + r["errors"] for r in these)
        others = max(r["cpu"]["others"] for r in these)
        bound = " †" if any(r.get("generator_bound") for r in these) else ""
        ratios = ["", "", ""]
        if label != "redis" and redis:
            ratios = [
                f"{med(ev) / med(r['events_per_sec'] for r in redis):.2f}×",
                f"{med(cpu) / med(ns(r) for r in redis):.2f}×",
                f"{med(p99) / med(r['delivery_latency']['p99_us'] for r in redis):.2f}×",
            ]
        print(f"| {pipeline} | {label} | {fmt(med(ev))}{bound} ({', '.join(fmt(x) for x in ev)}) "
              f"| {fmt(p50)} | {fmt(med(p99))} ({', '.join(fmt(x) for x in p99)}) "
              f"| {fmt(med(cpu))} ({', '.join(fmt(x) for x in cpu)}) | {fmt(writes)} "
              f"| {drops} | {missing} | {' | '.join(ratios)} | {others:.0f} |")
print()
print("*drops*: subscribers the server disconnected, over all rounds; *missing*: events a "
      "subscriber never got (and wrong messages), checked after a PING barrier, over all rounds. "
      "Targets: 8 in flight, events/s ≥ 1.5× Redis; 1 in flight, CPU per event ≤ 1× Redis and "
      "p99 ≤ 1× Redis. *Others' CPU*: what processes other than the server and kv-bench used "
      "during a measured window (the machine is shared): high values mean a busy machine. "
      "† generator-bound: in at least one round kv-bench used ≥ 90% of its core, so events/s "
      "is a floor set by the generator as much as by the server; server CPU per event still holds.")
PY
)
printf '%s\n' "$SECTION"
write_section "fanout.sh" "$OUT" "$SECTION"
log "wrote $RESULTS and the fanout.sh section of $OUT"
