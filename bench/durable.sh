#!/usr/bin/env bash
# Durable writes side by side: kv-server --data-dir (OK only after fdatasync, group
# commit) against redis-server --appendonly yes --appendfsync always, 100% PUT/SET, in
# four shapes (connections x requests in flight: 1x1, 1x32, 50x1, 50x32), alternating,
# ROUNDS rounds. Writes its section of BENCHMARKS.md
# (between the durable.sh markers) and bench/results/durable.jsonl.
#
#   bash bench/durable.sh
#
# Every server it starts is stopped by PID on exit; its data directories are removed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS=$ROOT/bench/results/durable.jsonl
WORK=$(mktemp -d -p "${DATA_PARENT:-/var/tmp}" kv-durable-bench.XXXXXX)

log() { printf '[durable %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

install_redis
log "building release binaries"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p kv-server -p kv-bench

# start_server NAME → sets PORT and PID; fresh data each time.
start_server() {
  PORT=$(free_port)
  local dir="$WORK/$1-$PORT"; mkdir -p "$dir"
  case $1 in
    kv-server) "$BIN/kv-server" --port "$PORT" --data-dir "$dir" 2>"$dir.log" & ;;
    redis-aof-always) redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync always --dir "$dir" --logfile "$dir.log" & ;;
  esac
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
SHAPES=${SHAPES:-1x1 1x32 50x1 50x32}
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    for server in kv-server redis-aof-always; do
      start_server "$server"
      proto=kv; [[ $server == redis* ]] && proto=redis
      log "round $round: $server, $conns conns x $pipeline in flight"
      "$BIN/kv-bench" --proto "$proto" --label "$server" --addr "127.0.0.1:$PORT" --conns "$conns" \
        --pipeline "$pipeline" --duration "$DURATION" --warmup "$WARMUP" --value-size 16 \
        --keys 10000 --get-ratio 0 --server-pid "$PID" --json >>"$RESULTS"
      stop_all
    done
  done
done

section=$(python3 - "$RESULTS" "$ROUNDS" "$DURATION" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def runs(label, conns, pipeline):
    return [r for r in rows if r["label"] == label and r["conns"] == conns and r["pipeline"] == pipeline]
def cpu_us(r):
    # Server CPU per write: the share of one core the server used, over the writes it did.
    return r["cpu"]["server"] / 100 * 1e6 / r["ops_per_sec"]
print("### Durable writes (100% PUT, sync before every acknowledgement)\n")
print(f"`bash bench/durable.sh` ({sys.argv[2]} rounds of {sys.argv[3]} s, servers alternating, fresh data each run):")
print("kv-server `--data-dir DIR` (default `--fsync always`) against "
      "`redis-server --appendonly yes --appendfsync always`; load "
      "`kv-bench --proto kv|redis --conns C --pipeline P --get-ratio 0 --value-size 16 --keys 10000`, "
      "on the same 2 cores as the servers. Server CPU per write is the server's CPU time "
      "(from /proc) over the writes it acknowledged.\n")
print("| conns × in flight | server | writes/s, median (all rounds) | server CPU µs/write | p99 µs | errors | ÷ redis |")
print("|---|---|---|---|---|---|---|")
shapes = sorted({(r["conns"], r["pipeline"]) for r in rows})
for conns, pipeline in shapes:
    redis = runs("redis-aof-always", conns, pipeline)
    redis_ops = statistics.median(r["ops_per_sec"] for r in redis) if redis else float("nan")
    for label in ("kv-server", "redis-aof-always"):
        these = runs(label, conns, pipeline)
        if not these:
            continue
        ops = statistics.median(r["ops_per_sec"] for r in these)
        cpu = statistics.median(cpu_us(r) for r in these)
        p99 = statistics.median(r["latency"]["p99_us"] for r in these)
        errs = sum(r["errors"] for r in these)
        ratio = f"{ops / redis_ops:.2f}×" if label == "kv-server" else ""
        vals = ", ".join(f"{r['ops_per_sec']:,.0f}" for r in these)
        print(f"| {conns} × {pipeline} | {label} | {ops:,.0f} ({vals}) | {cpu:.1f} | {p99:,.0f} | {errs} | {ratio} |")
PY
)
write_section durable.sh "$OUT" "$section"
log "wrote $OUT"
