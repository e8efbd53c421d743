# Shared by the benchmark scripts (sourced, not run): the servers a script starts, stopped
# by PID on any exit; free ports; waiting for a server; installing Redis if missing.
# A script defines `log` before sourcing this file.

# --- processes we started, stopped by PID on any exit ----------------------------------
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# A loopback port that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [LOGFILE]: until something accepts on PORT (10 s), else say so (with the
# end of LOGFILE if given) and fail.
wait_port() {
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  log "server on port $1 did not come up"
  [[ -n ${2:-} ]] && tail -5 "$2" >&2
  return 1
}

# Installs Debian's redis-server if it is not there.
install_redis() {
  command -v redis-server >/dev/null && return 0
  log "installing redis-server"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

# write_section NAME FILE TEXT: puts TEXT into FILE between the markers
# `<!-- NAME:begin -->` and `<!-- NAME:end -->`, replacing what was there (or appending the
# block if FILE has none), so a script's latest run replaces its previous one.
write_section() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys, re
name, path, section = sys.argv[1:4]
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
block = f"{begin}\n{section}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
}

# --- a quiet machine ---------------------------------------------------------------------
# Builds and benchmarks running now (rustc, cargo and kv-bench processes), as
# "N rustc, M cargo, K kv-bench".
busy_builds() {
  echo "$(pgrep -c -x rustc || true) rustc, $(pgrep -c -x cargo || true) cargo," \
    "$(pgrep -c -x kv-bench || true) kv-bench"
}

# wait_quiet SECONDS: waits, up to SECONDS, until no rustc, cargo or kv-bench runs (other
# engineers' builds and benchmarks share these cores); says so if it gives up, and goes
# on. Call it before starting a kv-bench of one's own.
wait_quiet() {
  local limit=$1 waited=0
  while pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null || pgrep -x kv-bench >/dev/null; do
    if (( waited >= limit )); then
      log "builds still running after ${limit}s ($(busy_builds)): measuring anyway"
      return 0
    fi
    (( waited == 0 )) && log "waiting for other builds to finish ($(busy_builds))"
    sleep 10; waited=$((waited + 10))
  done
}
