#!/usr/bin/env bash
# kv-server side by side with Redis and memcached (and its echo mode with a bare tokio
# echo), on loopback, with one load generator: kv-bench. Writes the generated part of
# BENCHMARKS.md (between its compare.sh markers), bench/results/results.jsonl and
# bench/results/chart.svg.
#
#   bash bench/compare.sh            # the full comparison, about 15 minutes on 2 cores
#   ROUNDS=1 DURATION=2 bash bench/compare.sh   # a quick look
#
# Every server it starts is stopped by PID on exit, whatever the exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
THREADS=${THREADS:-1}          # kv-bench generator threads
# Redis frees an idle client's query buffer in its clients cron once it has been idle
# 2 s; give every server time to settle like that before its memory is read.
IDLE_SETTLE=${IDLE_SETTLE:-4}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RESULTS=$RESULTS_DIR/results.jsonl
CHART=$RESULTS_DIR/chart.svg
LOGS=$(mktemp -d)
BIN=$TARGET_DIR/release

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- processes we started, stopped by PID on any exit ----------------------------------
PIDS=()
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}
trap 'stop_all; rm -rf "$LOGS"' EXIT
trap 'exit 130' INT TERM

# --- what it needs ------------------------------------------------------------------------
install_missing() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v memcached >/dev/null || missing+=(memcached)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# A port nobody listens on (bash's /dev/tcp connect fails).
free_port() {
  local port
  while :; do
    # Below the ephemeral range (32768+ by default), where client sockets take theirs.
    port=$((10000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

wait_listening() {
  local port=$1
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listening on port $port after 10 s"
  return 1
}

# start NAME PORT COMMAND... : starts a server in the background; sets STARTED_PID.
start() {
  local name=$1 port=$2
  shift 2
  "$@" >"$LOGS/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  if ! wait_listening "$port"; then
    log "$name did not start; its log ends:"
    tail -5 "$LOGS/$name.log" >&2
    return 1
  fi
}

# The command lines, kept for BENCHMARKS.md. %PORT% is filled in at start.
MC_USER=()
[[ $(id -u) -eq 0 ]] && MC_USER=(-u root)   # memcached refuses to run as root without it
declare -A CMD PROTO
CMD[kv-server]="$BIN/kv-server --port %PORT% --max-connections 20000"
CMD[redis]="redis-server --save '' --appendonly no --bind 127.0.0.1 --port %PORT% --maxclients 20000"
CMD[memcached]="memcached -t 2 -p %PORT% -U 0 -l 127.0.0.1 -c 20000 ${MC_USER[*]}"
CMD[kv-server-echo]="$BIN/kv-server --mode echo --port %PORT% --max-connections 20000"
# The same servers on one event loop (--workers 1): the generator shares the 2 cores, and
# Redis is single-threaded.
CMD[kv-server-1w]="${CMD[kv-server]} --workers 1"
CMD[kv-server-echo-1w]="${CMD[kv-server-echo]} --workers 1"
CMD[tokio-echo]="$BIN/examples/tokio_echo %PORT%"
PROTO[kv-server]=kv
PROTO[redis]=redis
PROTO[memcached]=memcached
PROTO[kv-server-echo]=echo
PROTO[kv-server-1w]=kv
PROTO[kv-server-echo-1w]=echo
PROTO[tokio-echo]=echo

declare -A PORT PID
start_named() {
  local name=$1 port
  port=$(free_port)
  local cmd=${CMD[$name]//%PORT%/$port}
  eval "start $name $port $cmd"
  PORT[$name]=$port
  PID[$name]=$STARTED_PID
}

bench() { "$BIN/kv-bench" --threads "$THREADS" --json "$@" >>"$RESULTS"; }

# Rotates an array by N, so no server always runs first (or last) in a round.
rotate() {
  local n=$1
  shift
  local items=("$@") i
  for ((i = 0; i < ${#items[@]}; i++)); do
    printf '%s\n' "${items[$(((i + n) % ${#items[@]}))]}"
  done
}

# --- build ----------------------------------------------------------------------------------
install_missing
log "building release binaries"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet \
  -p kv-server -p kv-bench --bins --example tokio_echo)
# 10,000 idle connections need descriptors on both sides; raise ours (children inherit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$RESULTS_DIR"
: >"$RESULTS"
STARTED=$(date +%s)

# --- idle memory: a freshly started server per measurement --------------------------------
IDLE_SERVERS=(kv-server redis memcached tokio-echo)
# Served one ping then idle (what a real idle client costs), and silent (never read from).
IDLE_MODES=(ping silent)
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in "${IDLE_MODES[@]}"; do
    silent=()
    [[ $mode == silent ]] && silent=(--idle-silent)
    mapfile -t order < <(rotate "$round" "${IDLE_SERVERS[@]}")
    for name in "${order[@]}"; do
      log "round $round/$ROUNDS: $IDLE_CONNS idle ($mode) connections to $name"
      start_named "$name"
      sleep 0.5
      bench --label "$name" --proto "${PROTO[$name]}" --addr "127.0.0.1:${PORT[$name]}" \
        --idle "$IDLE_CONNS" "${silent[@]}" --server-pid "${PID[$name]}" --warmup "$IDLE_SETTLE"
      stop_all
    done
  done
done

# --- load: every server started once, workloads alternated over rounds ---------------------
KV_SERVERS=(kv-server kv-server-1w redis memcached)
ECHO_SERVERS=(kv-server-echo kv-server-echo-1w tokio-echo)
SHAPES=("1 1" "50 1" "50 32" "1000 1")
for name in "${KV_SERVERS[@]}" "${ECHO_SERVERS[@]}"; do start_named "$name"; done
for ((round = 1; round <= ROUNDS; round++)); do
  for shape in "${SHAPES[@]}"; do
    read -r conns pipeline <<<"$shape"
    for group in KV ECHO; do
      if [[ $group == KV ]]; then servers=("${KV_SERVERS[@]}"); else servers=("${ECHO_SERVERS[@]}"); fi
      mapfile -t order < <(rotate "$round" "${servers[@]}")
      for name in "${order[@]}"; do
        log "round $round/$ROUNDS: $name, $conns conns, pipeline $pipeline"
        bench --label "$name" --proto "${PROTO[$name]}" --addr "127.0.0.1:${PORT[$name]}" \
          --conns "$conns" --pipeline "$pipeline" --duration "$DURATION" --warmup "$WARMUP" \
          --value-size 16 --keys 10000 --get-ratio 0.9 --server-pid "${PID[$name]}"
      done
    done
  done
done
stop_all
ELAPSED=$(($(date +%s) - STARTED))

# --- BENCHMARKS.md ----------------------------------------------------------------------------
TABLES=$("$BIN/kv-bench" report "$RESULTS" --svg "$CHART" --ours kv-server,kv-server-1w,kv-server-echo,kv-server-echo-1w)
GENERATED=$LOGS/generated.md
{
  echo "<!-- compare.sh:begin (generated by bench/compare.sh; edits here are overwritten) -->"
  echo "### Latest run"
  echo
  echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP bash bench/compare.sh\` in ${ELAPSED}s (commit \`$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\`)."
  echo
  echo "**Machine:** $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r);"
  echo "$(redis-server --version | awk '{print $1, $2, $3}'), memcached $(memcached -V 2>/dev/null | awk '{print $2}'), $(rustc --version 2>/dev/null || echo rustc unknown)."
  echo "The load generator runs on the same $(nproc) cores as the server: kv-bench used $THREADS generator thread(s), each a single-threaded tokio runtime."
  echo
  echo "**Servers** (loopback, each on a free port):"
  echo
  echo '```'
  for name in kv-server kv-server-1w redis memcached kv-server-echo kv-server-echo-1w tokio-echo; do
    echo "${CMD[$name]//$BIN/target/release}" | sed 's/%PORT%/$PORT/'
  done
  echo '```'
  echo
  echo "**Load** (each shape on each server, servers in rotated order, $ROUNDS rounds; medians shown):"
  echo
  echo '```'
  echo "kv-bench --threads $THREADS --proto kv|redis|memcached|echo --addr 127.0.0.1:\$PORT \\"
  echo "  --conns C --pipeline P --duration $DURATION --warmup $WARMUP --value-size 16 --keys 10000 --get-ratio 0.9 --server-pid \$PID --json"
  echo "kv-bench --proto ... --idle $IDLE_CONNS [--idle-silent] --server-pid \$PID --warmup $IDLE_SETTLE --json   # on a freshly started server"
  echo '```'
  echo
  echo "Latency is measured from each request's intended send time (the moment its slot freed),"
  echo "in µs. Ratios are medians of ops/s, ours ÷ theirs. Every reply was checked byte for byte; *errors* counts wrong or missing replies over all rounds."
  echo "*Others' CPU* is what processes other than the server and kv-bench used during a measured window (the machine is shared): a high value means that row was measured on a busy machine."
  echo
  echo "$TABLES"
  echo
  echo "![throughput and p99 by connection count](bench/results/chart.svg)"
  echo
  echo "Raw results (one JSON line per run): \`bench/results/results.jsonl\`."
  echo "<!-- compare.sh:end -->"
} >"$GENERATED"

if [[ -f $OUT ]] && grep -q '<!-- compare.sh:begin' "$OUT"; then
  awk -v gen="$GENERATED" '
    /<!-- compare.sh:begin/ { while ((getline line < gen) > 0) print line; skip = 1; next }
    /<!-- compare.sh:end/ { skip = 0; next }
    !skip { print }
  ' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
else
  { echo "# Benchmarks"; echo; cat "$GENERATED"; } >"$OUT"
fi
log "wrote $OUT, $RESULTS and $CHART in ${ELAPSED}s"
