#!/usr/bin/env bash
# Mass insertion through the command-line clients: a million PUTs piped into `kv-cli`
# against kv-server, and the same million SETs piped into `redis-cli --pipe` against
# redis-server (Redis' documented way of mass insertion, fed the RESP protocol its manual
# recommends), the two alternating, ROUNDS rounds. Each run starts a fresh server, checks
# afterwards that every key is there, and is timed with /usr/bin/time (wall, and the
# client's CPU). Writes its section of BENCHMARKS.md (between the cli-pipe markers).
#
#   bash bench/cli-pipe.sh
#   N=100000 ROUNDS=1 bash bench/cli-pipe.sh   # a quick look
#
# kv-cli prints every reply (a million `OK` lines, sent to /dev/null here), redis-cli
# --pipe only a summary: kv-cli does that much more work. Every server it starts is
# stopped by PID on exit; the input files live in a temporary directory removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
WORK=$(mktemp -d)

log() { printf '[cli-pipe %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'stop_all; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

install_redis
command -v redis-cli >/dev/null || { log "redis-cli is needed (Debian's redis-tools)"; exit 1; }
[[ -x /usr/bin/time ]] || { log "/usr/bin/time is needed (Debian's time)"; exit 1; }
log "building release binaries"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p kv-server -p kv-server-cli)

log "writing $N requests for each client"
awk -v n="$N" 'BEGIN { print "CREATE bench"; for (i = 0; i < n; i++) printf "PUT bench key:%d value:%d\n", i, i }' \
  >"$WORK/kv.txt"
# RESP, as Redis' mass-insertion manual generates it: *3 $3 SET $len key $len value.
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) { k = "key:" i; v = "value:" i;
  printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' \
  >"$WORK/redis.resp"

# time_run LABEL COMMAND...: runs COMMAND, prints "wall user sys" seconds.
time_run() {
  /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$@"
  cat "$WORK/time"
}

kv_round() {
  local port pid
  port=$(free_port)
  "$BIN/kv-server" --port "$port" 2>"$WORK/kv.log" &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$WORK/kv.log"
  local t
  t=$(time_run sh -c "'$BIN/kv-cli' -p $port < '$WORK/kv.txt' > '$WORK/kv.out'")
  local keys
  keys=$("$BIN/kv-cli" -p "$port" INFO keyspace | sed -n 's/^keys://p')
  [[ $keys == "$N" ]] || { log "kv-server holds $keys keys, not $N"; exit 1; }
  [[ $(wc -l <"$WORK/kv.out") == $((N + 1)) ]] || { log "kv-cli printed the wrong number of replies"; exit 1; }
  stop_all
  echo "$t"
}

redis_round() {
  local port pid
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$WORK/redis.log"
  local t
  t=$(time_run sh -c "redis-cli -p $port --pipe < '$WORK/redis.resp' > '$WORK/redis.out'")
  local keys
  keys=$(redis-cli -p "$port" DBSIZE)
  [[ $keys == "$N" ]] || { log "redis-server holds $keys keys, not $N"; exit 1; }
  stop_all
  echo "$t"
}

kv_runs=() redis_runs=()
for round in $(seq "$ROUNDS"); do
  log "round $round: kv-cli"
  kv_runs+=("$(kv_round)")
  log "round $round: redis-cli --pipe"
  redis_runs+=("$(redis_round)")
done

# The median round by wall time; rates from it.
summary=$(python3 - "$N" "${kv_runs[@]}" -- "${redis_runs[@]}" <<'PY'
import sys, statistics
n = int(sys.argv[1]); rest = sys.argv[2:]; cut = rest.index("--")
def parse(runs): return [tuple(map(float, r.split())) for r in runs]
kv, redis = parse(rest[:cut]), parse(rest[cut + 1:])
def row(name, runs):
    runs = sorted(runs)
    wall, user, sys_ = runs[len(runs) // 2]
    walls = ", ".join(f"{w:.2f}" for w, _, _ in runs)
    return f"| {name} | {wall:.2f} s | {n / max(wall, 0.01) / 1e6:.2f} M/s | {user + sys_:.2f} s | {walls} |"
print("| client | wall (median) | requests/s | client CPU (user+sys) | every round's wall |")
print("|---|---|---|---|---|")
print(row("`kv-cli` → kv-server", kv))
print(row("`redis-cli --pipe` → redis-server", redis))
PY
)
log "done"
echo "$summary"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
count=$(python3 -c "print(f'{$N:,}')")
section="### Mass insertion through the CLI (\`kv-cli\` against \`redis-cli --pipe\`)

$count PUTs piped into \`kv-cli\` (a fresh in-memory kv-server; replies printed to /dev/null),
against the same $count SETs, as RESP, piped into \`redis-cli --pipe\` (a fresh redis-server,
no persistence; it prints only a summary). Median of $ROUNDS rounds, the two alternating,
both servers checked afterwards to hold every key. \`bash bench/cli-pipe.sh\` at $commit,
on the shared 2-core machine described under \"The machine\" (client, server and the rest
of the machine's load share the two cores, so the figures vary by tens of percent).

$summary

Both clients spend about the same CPU; the difference in wall time is on the servers' side
(pipelined, kv-server answers 2.2–2.7× Redis' requests per second, \"Summary\" above).
$(redis-cli --version), $("$BIN/kv-server" --version 2>/dev/null || echo kv-server)."
write_section cli-pipe "$OUT" "$section"
log "wrote the cli-pipe section of $OUT"
