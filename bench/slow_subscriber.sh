#!/usr/bin/env bash
# Slow subscribers: subscribers that never read while one writer pushes 64 MB or more of
# events (VALUE_SIZE-byte values, 8 in flight, flat out for DURATION s, or RATE writes/s if
# set; one reading subscriber beside them). For each count of slow subscribers in SLOW
# (0 is the baseline), on a fresh release kv-server with --subscriber-buffer-bytes BUFFER,
# it reports the server's RSS growth (peak during the run minus before the first write;
# per slow subscriber, beyond the baseline's growth) and the writer's p99, ROUNDS rounds,
# counts alternating.
#
#   bash bench/slow_subscriber.sh       # ROUNDS=5 VALUE_SIZE=1024 DURATION=1 SLOW="0 1 10" [RATE=...]
#
# No warm-up: the slow subscribers are cut off within the first tens of MB, and the writer's
# latency is measured over the whole run, so it includes that time.
#
# Flat out by default: a steady rate is paced by tokio's timer, whose 1 ms resolution
# would then dominate the writer's latency.
#
# Targets: RSS growth < 2 × BUFFER per slow subscriber; the writer's p99 within 10% of
# the baseline's. Prints a Markdown table and one JSON line per run to RESULTS. Only the
# servers it started are stopped, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
RATE=${RATE:-}
VALUE_SIZE=${VALUE_SIZE:-1024}
DURATION=${DURATION:-1}
SLOW=${SLOW:-0 1 10}
BUFFER=${BUFFER:-1048576}
QUIET_WAIT=${QUIET_WAIT:-600}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS=${RESULTS:-$ROOT/bench/results/slow_subscriber.jsonl}

log() { printf '[slow-subscriber %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

if [[ -z ${SKIP_BUILD:-} ]]; then
  log "building release binaries"
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p kv-server -p kv-bench
fi
wait_quiet "$QUIET_WAIT"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for slow in $SLOW; do
    port=$(free_port)
    "$BIN/kv-server" --port "$port" --subscriber-buffer-bytes "$BUFFER" 2>/dev/null &
    PIDS+=($!); wait_port "$port"
    log "round $round: $slow slow subscriber(s)"
    "$BIN/kv-bench" --addr "127.0.0.1:$port" --label "slow-$slow" --subscribers 1 \
      --slow-subscribers "$slow" --conns 1 --pipeline 8 ${RATE:+--rate "$RATE"} \
      --value-size "$VALUE_SIZE" --duration "$DURATION" --warmup 0 \
      --server-pid "${PIDS[-1]}" --json >>"$RESULTS"
    stop_all
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RESULTS" "$BUFFER" "$LOAD_START" "$LOAD_END" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
buffer, load_start, load_end = int(sys.argv[2]), sys.argv[3], sys.argv[4]
med = statistics.median
event = rows[0]["value_size"] + len("w0 SET TO ") + 2
least = min(r["writes_acked"] for r in rows)
print(f"Each run: at least {least:,} writes of {rows[0]['value_size']} bytes, so at least "
      f"{least * event / 1e6:.1f} MB of events for every subscriber; --subscriber-buffer-bytes "
      f"{buffer:,}; load average {load_start} at the start, {load_end} at the end.")
print()
print("| slow subscribers | writes/s | dropped | RSS growth KiB (rounds) | per slow subscriber beyond the baseline's, × buffer | writer p50 / p99 µs (rounds' p99) | p99 ÷ baseline | delivery p99 µs | reading subscriber missed |")
print("|---|---|---|---|---|---|---|---|---|")
base = base_growth = None
for slow in sorted({r["slow_subscribers"] for r in rows}):
    these = [r for r in rows if r["slow_subscribers"] == slow]
    growth = [r["server_rss_peak_kib"] - r["server_rss_before_kib"] for r in these]
    p99 = [r["write_latency"]["p99_us"] for r in these]
    if slow == 0:
        base, base_growth = med(p99), med(growth)
    # Beyond what the same run without slow subscribers grew by.
    per = (f"{(med(growth) - (base_growth or 0)) * 1024 / slow / buffer:.2f}" if slow else "")
    ratio = f"{med(p99) / base:.2f}×" if base and slow else ""
    print(f"| {slow} | {med(r['writes_per_sec'] for r in these):,.0f} | {sum(r['dropped_slow_subscribers'] for r in these)}/{slow * len(these)} "
          f"| {med(growth):,.0f} ({', '.join(f'{g:,}' for g in growth)}) | {per} "
          f"| {med(r['write_latency']['p50_us'] for r in these):,.0f} / {med(p99):,.0f} "
          f"({', '.join(f'{p:,.0f}' for p in p99)}) | {ratio} "
          f"| {med(r['delivery_latency']['p99_us'] for r in these):,.0f} "
          f"| {sum(r['events_missing'] for r in these)} |")
PY
