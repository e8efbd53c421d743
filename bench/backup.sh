#!/usr/bin/env bash
# Backups against Redis' (`redis-cli --rdb`): the same data (KEYS keys of VALUE bytes,
# preloaded by kv-bench) in a kv-server (memory mode, defaults) and a Redis (no persistence,
# as compare.sh), then for each: the time to take a backup into a file, the server's CPU
# for it (Redis: its forked child's included), and the server's memory during it (PSS,
# parent and any child, sampled every 20 ms, against before). Then 50 writers (kv-bench, all
# PUTs, ping-pong) against kv-server without and with backups running meanwhile: their p99.
# Writes its section of BENCHMARKS.md (between the backup.sh markers).
#
#   bash bench/backup.sh                          # 1 M keys x 1 KB: ~1 GB each, ~4 GB RAM
#   KEYS=100000 bash bench/backup.sh              # a quick look
#
# Every server it starts is stopped by PID on exit; its files go in a temporary directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1000000}
VALUE=${VALUE:-1000}
WRITERS=${WRITERS:-50}
WRITE_SECS=${WRITE_SECS:-10}
# Writer runs alternate (no backup, backups, backups discarded) this many times; medians.
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
WORK=$(mktemp -d)

log() { printf '[backup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

install_redis
log "building release binaries"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet \
  -p kv-server -p kv-server-cli -p kv-bench)
TICKS=$(getconf CLK_TCK)
wait_quiet 600
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# CPU seconds of PID and its waited-for children (proc(5): utime stime cutime cstime).
cpu_secs() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15 + $16 + $17) / t }' "/proc/$1/stat"; }
# PSS in KiB of PID and its children (a fork's shared pages counted once between them).
pss_kib() {
  local total=0 p
  for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    total=$((total + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
# sample_peak PID FILE: the highest pss_kib of PID, written to FILE until it is removed.
sample_peak() {
  local peak=0 now
  while [[ -e $2.run ]]; do
    now=$(pss_kib "$1"); ((now > peak)) && peak=$now
    echo "$peak" >"$2"; sleep 0.02
  done
}

preload() { # preload PROTO PORT
  "$BIN/kv-bench" --proto "$1" --addr "127.0.0.1:$2" --keys "$KEYS" --value-size "$VALUE" \
    --conns 1 --duration 0.2 --warmup 0 --get-ratio 1 >/dev/null
}

# measure NAME PID COMMAND...: runs COMMAND (a backup into a file) and prints
# "NAME seconds cpu_seconds pss_before_kib pss_peak_kib file_bytes".
measure() {
  local name=$1 pid=$2; shift 2
  local before cpu0 t0 t1 cpu1 peak
  before=$(pss_kib "$pid"); cpu0=$(cpu_secs "$pid")
  touch "$WORK/peak.run"; sample_peak "$pid" "$WORK/peak" & local sampler=$!
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  sleep 0.5 # Redis reaps its child in its next cron tick; then the child's CPU is counted
  cpu1=$(cpu_secs "$pid"); rm -f "$WORK/peak.run"; wait "$sampler"; peak=$(cat "$WORK/peak")
  printf '%s %.2f %.2f %s %s %s\n' "$name" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "$cpu1 - $cpu0" | bc)" "$before" "$peak" "$(stat -c %s "$WORK/$name.backup")"
}

KV_PORT=$(free_port)
"$BIN/kv-server" --port "$KV_PORT" 2>"$WORK/kv.log" & KV_PID=$!; PIDS+=("$KV_PID")
REDIS_PORT=$(free_port)
# Diskless sync waits 5 s by default for more replicas to join: not for a lone backup.
redis-server --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" \
  --repl-diskless-sync-delay 0 \
  >"$WORK/redis.log" 2>&1 & REDIS_PID=$!; PIDS+=("$REDIS_PID")
wait_port "$KV_PORT" "$WORK/kv.log"; wait_port "$REDIS_PORT" "$WORK/redis.log"
log "preloading $KEYS keys of $VALUE bytes into each"
preload kv "$KV_PORT"; preload redis "$REDIS_PORT"

log "backups"
# The clients run under the idle policy, as contrib/systemd/kv-backup.service runs kv-cli.
KV_ROW=$(measure kv "$KV_PID" chrt --idle 0 "$BIN/kv-cli" -p "$KV_PORT" --backup "$WORK/kv.backup")
REDIS_ROW=$(measure redis "$REDIS_PID" chrt --idle 0 redis-cli -p "$REDIS_PORT" --rdb "$WORK/redis.backup")
log "$KV_ROW"; log "$REDIS_ROW"

writers() { # writers LABEL: p99 of WRITERS ping-pong PUT connections, JSON line
  "$BIN/kv-bench" --addr "127.0.0.1:$KV_PORT" --conns "$WRITERS" --pipeline 1 \
    --keys 10000 --value-size "$VALUE" --get-ratio 0 --duration "$WRITE_SECS" --warmup 1 \
    --server-pid "$KV_PID" --label "$1" --json
}
# backups_meanwhile KIND LABEL: a writers run (JSON line) while backups run back to back,
# taken by kv-cli into a file (KIND file) or read and discarded (KIND drain: the server's
# side alone, without kv-cli's checking and file writes on these cores).
SIZE=$(stat -c %s "$WORK/kv.backup")
drain() {
  chrt --idle 0 python3 - "$KV_PORT" "$SIZE" <<'PY'
import socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"BACKUP\r\n")
got = 0
while got < size:
    got += len(s.recv(1 << 20)) or size
PY
}
backups_meanwhile() {
  touch "$WORK/loop.run"
  ( while [[ -e $WORK/loop.run ]]; do
      if [[ $1 == file ]]; then
        chrt --idle 0 "$BIN/kv-cli" -p "$KV_PORT" --backup "$WORK/loop.backup" >/dev/null 2>&1 || true
      else
        drain || true
      fi
    done ) & local loop=$!
  writers "$2"
  rm -f "$WORK/loop.run"; wait "$loop"
}
: >"$WORK/writers.jsonl"
for round in $(seq "$ROUNDS"); do
  log "round $round: $WRITERS writers without, with, and with discarded backups"
  writers quiet >>"$WORK/writers.jsonl"
  backups_meanwhile file backing-up >>"$WORK/writers.jsonl"
  backups_meanwhile drain drained >>"$WORK/writers.jsonl"
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
SECTION=$(python3 - "$KV_ROW" "$REDIS_ROW" "$WORK/writers.jsonl" "$KEYS" "$VALUE" "$WRITERS" "$ROUNDS" "$LOAD_START" "$LOAD_END" "$(git -C "$ROOT" rev-parse --short HEAD)" <<'PY'
import json, statistics, sys
kv, redis = (r.split() for r in sys.argv[1:3])
runs = [json.loads(line) for line in open(sys.argv[3])]
keys, value, writers, rounds, load_start, load_end, commit = sys.argv[4:11]
def median_of(label):
    mine = [r for r in runs if r["label"] == label]
    return {"ops_per_sec": statistics.median(r["ops_per_sec"] for r in mine),
            "latency": {"p99_us": statistics.median(r["latency"]["p99_us"] for r in mine)},
            "rounds": ", ".join(f"{r['latency']['p99_us']:.0f}" for r in mine)}
quiet, busy, drained = (median_of(l) for l in ("quiet", "backing-up", "drained"))
def row(r):
    name, secs, cpu, before, peak, size = r
    return (f"| {name} | {float(secs):.2f} | {float(cpu):.2f} | {int(before)//1024} | "
            f"{(int(peak) - int(before))//1024} | {int(size)/1e6:,.0f} |")
ratio = lambda a, b: float(a) / float(b) if float(b) else float("nan")
lines = [
    f"`bash bench/backup.sh` ({int(keys):,} keys of {value} bytes in each server; kv-server "
    "in memory mode with default settings, Redis without persistence and "
    "`repl-diskless-sync-delay 0`; a backup into a file by `kv-cli --backup` and by "
    "`redis-cli --rdb`, each under the idle scheduling policy (`chrt --idle 0`) as the shipped systemd unit runs kv-cli; Redis' RDB "
    f"compresses the bench's repetitive values, ours does not; commit `{commit}`, load "
    f"average {load_start} at the start, {load_end} at the end):",
    "",
    "| server | seconds | server CPU s | memory before, MiB | grown by, MiB (PSS peak) | file MB |",
    "|---|---|---|---|---|---|",
    row(kv), row(redis),
    "",
    f"kv-server ÷ Redis: time {ratio(kv[1], redis[1]):.2f}×, server CPU "
    f"{ratio(kv[2], redis[2]):.2f}×.",
    "",
    f"{writers} writers (kv-bench, PUTs of {value} bytes, one in flight each) on kv-server, "
    f"medians of {rounds} rounds: "
    f"p99 {quiet['latency']['p99_us']:.0f} µs with no backup (rounds: {quiet['rounds']}), "
    f"{busy['latency']['p99_us']:.0f} µs with backups running back to back "
    f"({busy['rounds']}), {ratio(busy['latency']['p99_us'], quiet['latency']['p99_us']):.2f}×; "
    f"ops/s {quiet['ops_per_sec']:,.0f} → {busy['ops_per_sec']:,.0f}. With the backups read by "
    "a client that discards them (no checking, no file: the server's side alone), p99 "
    f"{drained['latency']['p99_us']:.0f} µs ({drained['rounds']}), "
    f"{ratio(drained['latency']['p99_us'], quiet['latency']['p99_us']):.2f}×; ops/s "
    f"{drained['ops_per_sec']:,.0f}.",
]
print("\n".join(lines))
PY
)
echo "$SECTION"
write_section backup.sh "$OUT" "$SECTION"
