#!/usr/bin/env bash
# TLS against plaintext: the same kv-server binary started plain and with --tls-cert-file,
# loaded by kv-bench (plain, and --tls) in four shapes (connections x requests in flight:
# 1x1, 1x32, 50x1, 50x32), the two alternating, ROUNDS rounds; then server memory per
# idle connection, plain and TLS. Writes its section of BENCHMARKS.md (between the tls.sh
# markers) and bench/results/tls.jsonl.
#
#   bash bench/tls.sh
#   ROUNDS=1 DURATION=2 IDLE_CONNS=1000 bash bench/tls.sh   # a quick look
#
# The certificates (a throwaway CA and a server certificate for localhost and 127.0.0.1)
# are made by openssl in a temporary directory removed on exit: no key is ever kept.
# Every server it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
# As compare.sh: long enough for every server to have settled before its memory is read.
IDLE_SETTLE=${IDLE_SETTLE:-4}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
RESULTS=${RESULTS:-$ROOT/bench/results/tls.jsonl}
WORK=$(mktemp -d)

log() { printf '[tls %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

command -v openssl >/dev/null || { log "openssl is needed to make the certificates"; exit 1; }
log "building release binaries"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p kv-server -p kv-bench)
# 10,000 idle connections need descriptors on both sides; raise ours (children inherit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- throwaway certificates: P-256 keys, as a modern deployment would use ----------------
make_certs() {
  local d=$WORK/pki
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=kv-bench-tls-ca -keyout "$d/ca.key" -out "$d/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=localhost -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' 'basicConstraints=CA:FALSE' 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    'extendedKeyUsage=serverAuth' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -days 1 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
}
make_certs
CA=$WORK/pki/ca.pem

# start_server plain|tls → sets PORT and PID: a fresh server, empty store.
start_server() {
  PORT=$(free_port)
  local args=(--port "$PORT" --max-connections 20000)
  [[ $1 == tls ]] && args+=(--tls-cert-file "$WORK/pki/server.pem" --tls-key-file "$WORK/pki/server.key")
  "$BIN/kv-server" "${args[@]}" 2>"$WORK/server-$1-$PORT.log" &
  PID=$!; PIDS+=("$PID"); wait_port "$PORT" "$WORK/server-$1-$PORT.log"
}

# bench plain|tls ARGS...: kv-bench against the server just started, one JSON line.
bench() {
  local mode=$1; shift
  local tls=()
  [[ $mode == tls ]] && tls=(--tls --tls-ca "$CA" --tls-server-name localhost)
  "$BIN/kv-bench" --label "kv-server-$mode" --addr "127.0.0.1:$PORT" --server-pid "$PID" \
    "${tls[@]}" --json "$@" >>"$RESULTS"
}

mkdir -p "$(dirname "$RESULTS")"; : >"$RESULTS"
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $LOAD_AT_START"
SHAPES=${SHAPES:-1x1 1x32 50x1 50x32}
for round in $(seq "$ROUNDS"); do
  # Alternate which goes first, so neither always meets the same neighbours' load.
  modes=(plain tls); ((round % 2 == 0)) && modes=(tls plain)
  for shape in $SHAPES; do
    conns=${shape%x*}; pipeline=${shape#*x}
    for mode in "${modes[@]}"; do
      start_server "$mode"
      log "round $round/$ROUNDS: $mode, $conns conns x $pipeline in flight"
      bench "$mode" --proto kv --conns "$conns" --pipeline "$pipeline" --duration "$DURATION" \
        --warmup "$WARMUP" --value-size 16 --keys 10000 --get-ratio 0.9
      stop_all
    done
  done
  # Served one ping (what a real idle client costs), and silent: for TLS, handshake done
  # but no record of data read yet, which separates the session from the buffers data
  # leaves behind.
  for silent in "" --idle-silent; do
    for mode in "${modes[@]}"; do
      start_server "$mode"
      log "round $round/$ROUNDS: $IDLE_CONNS idle $mode connections ${silent:-(one ping each)}"
      bench "$mode" --proto kv --idle "$IDLE_CONNS" $silent --warmup "$IDLE_SETTLE"
      stop_all
    done
  done
done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)

section=$(python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$WARMUP" "$IDLE_CONNS" "$LOAD_AT_START" "$LOAD_AT_END" <<'PY'
import json, statistics, sys
path, rounds, duration, warmup, idle_conns, load_start, load_end = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
loads = [r for r in rows if r["kind"] == "load"]
idles = [r for r in rows if r["kind"] == "idle"]
def runs(mode, conns, pipeline):
    return [r for r in loads if r["label"] == f"kv-server-{mode}"
            and r["conns"] == conns and r["pipeline"] == pipeline]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
print("### TLS against plaintext\n")
print(f"`bash bench/tls.sh` ({rounds} rounds of {duration} s after {warmup} s warm-up, plain and TLS "
      "alternating, a fresh server each run; load average "
      f"{load_start} at the start, {load_end} at the end): the same release kv-server started "
      "plain and with `--tls-cert-file server.pem --tls-key-file server.key` (a throwaway "
      "P-256 certificate made by openssl; TLS 1.3, rustls on ring), loaded by "
      "`kv-bench --proto kv --conns C --pipeline P --value-size 16 --keys 10000 --get-ratio 0.9 "
      "--server-pid PID [--tls --tls-ca ca.pem]`, one generator thread on the same 2 cores as "
      "the server. Handshakes happen at connect, before the measured window. Server CPU per "
      "request is the server's CPU time (from /proc) over the requests it answered.\n")
print("| conns × in flight | plain ops/s | TLS ops/s | TLS ÷ plain | plain server ns/request | "
      "TLS server ns/request | TLS ÷ plain | p99 µs plain / TLS | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for conns, pipeline in sorted({(r["conns"], r["pipeline"]) for r in loads}):
    plain, tls = runs("plain", conns, pipeline), runs("tls", conns, pipeline)
    if not plain or not tls:
        continue
    po, to = med(r["ops_per_sec"] for r in plain), med(r["ops_per_sec"] for r in tls)
    pn = med(r.get("server_ns_per_request") for r in plain)
    tn = med(r.get("server_ns_per_request") for r in tls)
    pp, tp = med(r["latency"]["p99_us"] for r in plain), med(r["latency"]["p99_us"] for r in tls)
    errs = sum(r["errors"] + r["conn_errors"] for r in plain + tls)
    all_ops = lambda rs: ", ".join(f"{r['ops_per_sec']:,.0f}" for r in rs)
    bound = " †" if any(r.get("generator_bound") for r in plain + tls) else ""
    print(f"| {conns} × {pipeline}{bound} | {po:,.0f} ({all_ops(plain)}) | {to:,.0f} ({all_ops(tls)}) | "
          f"{to / po:.2f} | {pn:,.0f} | {tn:,.0f} | {tn / pn:.2f} | {pp:,.0f} / {tp:,.0f} | {errs} |")
if any(r.get("generator_bound") for r in loads):
    print("\n† kv-bench used at least 90% of its core in a run of this row: ops/s there measures "
          "the generator (which encrypts too) as much as the server.")
if idles:
    print(f"\nServer memory per idle connection ({idle_conns} connections; RSS growth ÷ "
          "connections, median of the rounds; *one ping*: each served one request then left "
          "idle, *silent*: connected (for TLS, handshake finished) and never sent a byte of "
          "data):\n")
    print("| | one ping: bytes per connection | rounds | silent: bytes per connection | rounds |")
    print("|---|---|---|---|---|")
    per = {}
    for mode in ("plain", "tls"):
        cells = []
        for pinged in (True, False):
            these = [r for r in idles if r["label"] == f"kv-server-{mode}"
                     and r.get("pinged", True) == pinged]
            per[mode, pinged] = med(r.get("bytes_per_conn") for r in these)
            vals = ", ".join(f"{r['bytes_per_conn']:,.0f} ({r['open']} open, {r['errors']} errors)"
                             for r in these if r.get("bytes_per_conn") is not None)
            cells += [f"{per[mode, pinged]:,.0f}", vals]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print(f"| TLS − plain | {per['tls', True] - per['plain', True]:,.0f} | | "
          f"{per['tls', False] - per['plain', False]:,.0f} | |")
PY
)
write_section tls.sh "$OUT" "$section"
log "wrote $OUT"
