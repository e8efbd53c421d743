#!/usr/bin/env bash
# How throughput grows with cores. For N = 1, 2, 4, ... while 2N fits in the CPUs this
# script may use: kv-server --workers N pinned (taskset -c) to the first N CPUs, kv-bench
# --threads N --pin on the next N, at 50 x N connections ping-pong and pipelined 32; then
# the same against redis-server pinned the same way, and for N > 1 against Redis with
# --io-threads N. Writes bench/results/scaling.jsonl (one JSON line per run),
# scaling.md (the table: ops/s, speed-up, server CPU and context switches per request)
# and scaling.svg (the curves).
#
#   bash bench/scaling.sh                        # 3 rounds of 5 s per point
#   ROUNDS=1 DURATION=2 bash bench/scaling.sh    # a quick look
#   CPUS="0 2 4 6 1 3 5 7" bash bench/scaling.sh # choose the CPUs, in order (e.g. to
#                                                # keep SMT siblings apart)
#
# On a 2-CPU machine it measures N = 1 only. Installs redis-server if missing. Every
# server it starts is stopped by PID on exit, whatever the exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS_PER_CORE=${CONNS_PER_CORE:-50}
PIPELINES=${PIPELINES:-1 32}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
RESULTS=$RESULTS_DIR/scaling.jsonl
LOGS=$(mktemp -d)

log() { printf '[scaling %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$LOGS"' EXIT
trap 'exit 130' INT TERM

# --- what it needs ------------------------------------------------------------------------
install_redis
command -v taskset >/dev/null || { log "needs taskset (util-linux)"; exit 1; }
log "building release binaries"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p kv-server -p kv-bench --bins)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The CPUs to use, in order: the server gets the first N, the generator the next N.
if [[ -n ${CPUS:-} ]]; then
  read -r -a CPU_IDS <<<"$CPUS"
else
  mapfile -t CPU_IDS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
fi
# cpu_list FROM COUNT → "a,b,c": COUNT CPUs from position FROM (for taskset -c and --pin).
cpu_list() { local IFS=,; echo "${CPU_IDS[*]:$1:$2}"; }
NS=()
for ((n = 1; 2 * n <= ${#CPU_IDS[@]}; n *= 2)); do NS+=("$n"); done
if ((${#NS[@]} == 0)); then
  log "needs at least 2 CPUs (one for the server, one for the generator); has ${#CPU_IDS[@]}"
  exit 1
fi
log "CPUs ${CPU_IDS[*]}: N = ${NS[*]}"


# start_server NAME N → sets PORT and PID. taskset execs the server, so $! is its PID.
start_server() {
  local name=$1 n=$2 cores
  cores=$(cpu_list 0 "$n")
  PORT=$(free_port)
  local logfile=$LOGS/$name-$n-$PORT.log
  case $name in
    kv-server)
      taskset -c "$cores" "$BIN/kv-server" --port "$PORT" --workers "$n" \
        --max-connections 20000 >"$logfile" 2>&1 & ;;
    redis)
      taskset -c "$cores" redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --maxclients 20000 >"$logfile" 2>&1 & ;;
    # Redis 6-7 threads only writes unless told to read too; Redis 8 accepts and ignores it.
    redis-io-threads)
      taskset -c "$cores" redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --maxclients 20000 --io-threads "$n" --io-threads-do-reads yes \
        >"$logfile" 2>&1 & ;;
  esac
  PID=$!; PIDS+=("$PID"); wait_port "$PORT" "$logfile"
}

mkdir -p "$RESULTS_DIR"; : >"$RESULTS"
STARTED=$(date +%s)
for round in $(seq "$ROUNDS"); do
  for n in "${NS[@]}"; do
    servers=(kv-server redis)
    if ((n > 1)); then servers+=(redis-io-threads); fi
    # Rotate the order by round, so no server always goes first.
    for ((i = 0; i < ${#servers[@]}; i++)); do
      name=${servers[$(((i + round) % ${#servers[@]}))]}
      proto=redis; [[ $name == kv-server ]] && proto=kv
      start_server "$name" "$n"
      for pipeline in $PIPELINES; do
        conns=$((CONNS_PER_CORE * n))
        log "round $round/$ROUNDS: N=$n $name on CPU $(cpu_list 0 "$n"), generator on $(cpu_list "$n" "$n"), $conns conns x $pipeline"
        "$BIN/kv-bench" --proto "$proto" --label "$name" --addr "127.0.0.1:$PORT" \
          --threads "$n" --pin "$(cpu_list "$n" "$n")" --conns "$conns" --pipeline "$pipeline" \
          --duration "$DURATION" --warmup "$WARMUP" --value-size 16 --keys 10000 \
          --get-ratio 0.9 --server-pid "$PID" --json >>"$RESULTS"
      done
      stop_all
    done
  done
done
ELAPSED=$(($(date +%s) - STARTED))

{
  echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP bash bench/scaling.sh\` in ${ELAPSED}s (commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\`)."
  echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), Linux $(uname -r); $(redis-server --version | awk '{print $1, $2, $3}'). CPUs used, in order: ${CPU_IDS[*]}."
  echo "Server pinned with \`taskset -c\` to the first N, kv-bench \`--threads N --pin\` to the next N; 90% GET, 16-byte values, 10,000 keys; medians of $ROUNDS round(s)."
  echo
  "$BIN/kv-bench" report --scaling "$RESULTS" --ours kv-server --svg "$RESULTS_DIR/scaling.svg"
} >"$RESULTS_DIR/scaling.md"
cat "$RESULTS_DIR/scaling.md"
log "wrote $RESULTS, $RESULTS_DIR/scaling.md and $RESULTS_DIR/scaling.svg in ${ELAPSED}s"
