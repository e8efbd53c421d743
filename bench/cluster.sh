#!/usr/bin/env bash
# The cluster engine's cost: kv-server --redis-cluster (a 3-master, 3-replica Redis Cluster
# on loopback) next to kv-server in memory mode and a single redis-server, at 1 and 50
# connections, ping-pong and 32 requests in flight (kv-bench's default mix, 90% GET).
# Writes its section of BENCHMARKS.md (between the cluster.sh markers) and
# bench/results/cluster.jsonl.
#
#   bash bench/cluster.sh
#   ROUNDS=1 DURATION=2 bash bench/cluster.sh   # a quick look
#
# On a 2-core machine every process shares the same cores: this measures what the extra hop
# (client → kv-server → Redis master) costs, not how a cluster scales.
# Every process it starts is stopped by PID on exit; its directories are removed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS=$ROOT/bench/results/cluster.jsonl
WORK=$(mktemp -d -p "${DATA_PARENT:-/var/tmp}" kv-cluster-bench.XXXXXX)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

install_redis
log "building release binaries"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p kv-server -p kv-bench

# A port p with p + 10000 (the cluster bus) free too.
cluster_port() {
  local p
  while :; do
    p=$(python3 -c 'import random; print(random.randint(12000, 22000))')
    python3 - "$p" <<'PY' && { echo "$p"; return; }
import socket, sys
p = int(sys.argv[1])
for port in (p, p + 10000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
  done
}

# start_cluster → sets SEEDS; 6 nodes, 3 masters with a replica each.
start_cluster() {
  local ports=() p addrs=()
  for _ in $(seq 6); do ports+=("$(cluster_port)"); done
  for p in "${ports[@]}"; do
    # A directory per node and per run: a replica's full sync leaves a dump.rdb there, which
    # a later node would load and then refuse to join a new cluster ("not empty").
    local dir="$WORK/node-$p-$RANDOM"; mkdir -p "$dir"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
      --cluster-require-full-coverage no --dir "$dir" --save '' --appendonly no \
      --logfile "$WORK/redis-$p.log" &
    PIDS+=("$!")
    addrs+=("127.0.0.1:$p")
  done
  for p in "${ports[@]}"; do wait_port "$p" "$WORK/redis-$p.log"; done
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$WORK/create.log" 2>&1; then
    log "redis-cli --cluster create failed:"; tail -20 "$WORK/create.log" >&2; return 1
  fi
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok && break
      sleep 0.2
    done
  done
  SEEDS=$(IFS=,; echo "${addrs[*]}")
}

# start_server NAME → sets PORT and PID.
start_server() {
  PORT=$(free_port)
  case $1 in
    kv-cluster) "$BIN/kv-server" --port "$PORT" --redis-cluster "$SEEDS" 2>"$WORK/kv-$PORT.log" & ;;
    kv-memory) "$BIN/kv-server" --port "$PORT" 2>"$WORK/kv-$PORT.log" & ;;
    redis) redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --logfile "$WORK/redis-$PORT.log" & ;;
  esac
  PID=$!; PIDS+=("$PID"); wait_port "$PORT"
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
SHAPES=${SHAPES:-1x1 1x32 50x1 50x32}
for round in $(seq "$ROUNDS"); do
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    for server in kv-cluster kv-memory redis; do
      [[ $server == kv-cluster ]] && start_cluster
      start_server "$server"
      proto=kv; [[ $server == redis ]] && proto=redis
      log "round $round: $server, $conns conns x $pipeline in flight"
      "$BIN/kv-bench" --proto "$proto" --label "$server" --addr "127.0.0.1:$PORT" --conns "$conns" \
        --pipeline "$pipeline" --duration "$DURATION" --warmup "$WARMUP" --value-size 16 \
        --keys 10000 --server-pid "$PID" --json >>"$RESULTS"
      stop_all
      rm -rf "$WORK"/node-*
    done
  done
done

section=$(python3 - "$RESULTS" "$ROUNDS" "$DURATION" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def runs(label, conns, pipeline):
    return [r for r in rows if r["label"] == label and r["conns"] == conns and r["pipeline"] == pipeline]
print("### Cluster backend (kv-server `--redis-cluster`)\n")
print(f"`bash bench/cluster.sh` ({sys.argv[2]} round(s) of {sys.argv[3]} s, servers alternating): "
      "kv-server on a Redis Cluster of 3 masters and 3 replicas on loopback, kv-server in memory "
      "mode, and one `redis-server`; load `kv-bench --proto kv|redis --conns C --pipeline P "
      "--value-size 16 --keys 10000` (90% GET, 10% PUT). Everything — 6 Redis nodes, kv-server "
      "and the load generator — shares the same 2 cores, so this measures the cost of the extra "
      "hop (client → kv-server → Redis master), not how a cluster scales: on separate machines "
      "each master adds its own cores.\n")
print("| conns × in flight | server | ops/s, median (all rounds) | p50 µs | p99 µs | errors | ÷ memory mode |")
print("|---|---|---|---|---|---|---|")
shapes = sorted({(r["conns"], r["pipeline"]) for r in rows})
for conns, pipeline in shapes:
    memory = runs("kv-memory", conns, pipeline)
    memory_ops = statistics.median(r["ops_per_sec"] for r in memory) if memory else float("nan")
    for label in ("kv-cluster", "kv-memory", "redis"):
        these = runs(label, conns, pipeline)
        if not these:
            continue
        ops = statistics.median(r["ops_per_sec"] for r in these)
        p50 = statistics.median(r["latency"]["p50_us"] for r in these)
        p99 = statistics.median(r["latency"]["p99_us"] for r in these)
        errs = sum(r["errors"] for r in these)
        vals = ", ".join(f"{r['ops_per_sec']:,.0f}" for r in these)
        print(f"| {conns} × {pipeline} | {label} | {ops:,.0f} ({vals}) | {p50:,.0f} | {p99:,.0f} | {errs} | {ops / memory_ops:.2f}× |")
PY
)
write_section cluster.sh "$OUT" "$section"
log "wrote $OUT"
