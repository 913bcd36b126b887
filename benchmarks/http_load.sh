#!/usr/bin/env bash
# benchmarks/http_load.sh: HTTP load on the example service (examples/service.cpp) with
# wrk, requests per second with and without the executor.
#
#   bash benchmarks/http_load.sh                 # 2 threads, 16 connections, 5 s per run
#   WRK_THREADS=2 WRK_CONNECTIONS=8 WRK_DURATION=10s bash benchmarks/http_load.sh
#
# It builds the `release` preset's `service` target if needed, installs Debian's `wrk`
# if missing (needs root), starts the service on a free 127.0.0.1 port and runs:
#   (a) status polling:  GET /jobs/<key> of a finished stored job (FutureCollection
#       status as JSON, no new task);
#   (b) submit cycle:    GET /reports?steps=1 (submit_stored + 202 Accepted), then
#       GET /jobs/<key> once, then DELETE /jobs/<key>. Each job's task sleeps 100 ms on
#       one of the service's 4 workers, so most jobs are still pending and are
#       cancelled; that keeps the stored-futures collection (max 1000) from filling with
#       unfinished work, which would make submit_stored refuse every later job;
#   (c) baseline:        GET /, a plain route that never touches the executor.
# It prints each wrk command, wrk's output and a summary table. The service is stopped
# on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${WRK_THREADS:-2}"
CONNECTIONS="${WRK_CONNECTIONS:-16}"
DURATION="${WRK_DURATION:-5s}"
SERVICE="build/release/examples/service"

log() { printf '[http_load] %s\n' "$*" >&2; }

# --- build -------------------------------------------------------------------------------
if [[ ! -f build/release/CMakeCache.txt ]]; then
  log "configuring the release preset"
  cmake --preset release >/dev/null
fi
log "building ${SERVICE} (release preset)"
cmake --build --preset release --target service >/dev/null
[[ -x "${SERVICE}" ]] || { log "error: ${SERVICE} was not built"; exit 1; }

# --- wrk ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  if [[ "$(id -u)" -ne 0 ]]; then
    log "error: wrk is missing; install it as root: apt-get install wrk"
    exit 1
  fi
  log "installing wrk (Debian package)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

# --- start the service -------------------------------------------------------------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:${PORT}"
WORK="$(mktemp -d)"
SERVICE_PID=""

cleanup() {
  if [[ -n "${SERVICE_PID}" ]] && kill -0 "${SERVICE_PID}" 2>/dev/null; then
    kill -TERM "${SERVICE_PID}" 2>/dev/null || true
    wait "${SERVICE_PID}" 2>/dev/null || true
  fi
  rm -rf "${WORK}"
}
trap cleanup EXIT

"${SERVICE}" --port "${PORT}" >"${WORK}/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "${BASE}/" 2>/dev/null && break
  kill -0 "${SERVICE_PID}" 2>/dev/null || { log "error: the service exited"; cat "${WORK}/service.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "${BASE}/" || { log "error: the service does not answer on ${BASE}"; exit 1; }
log "service pid ${SERVICE_PID} on ${BASE}"

# A finished stored job to poll in (a).
KEY="$(curl -fsS "${BASE}/reports?steps=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
for _ in $(seq 1 100); do
  STATE="$(curl -fsS "${BASE}/jobs/${KEY}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
  [[ "${STATE}" == "FINISHED" ]] && break
  sleep 0.05
done
[[ "${STATE}" == "FINISHED" ]] || { log "error: job ${KEY} is ${STATE}"; exit 1; }

# The submit cycle for (b): submit, poll once, cancel. wrk's Lua state is per thread and
# responses carry no request tag, so each response is classified by its body.
cat >"${WORK}/submit_cycle.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end

function init(args)
  to_poll, to_cancel = {}, {}
  submitted, polled, cancelled, conflict, other = 0, 0, 0, 0, 0
  other_statuses = ""
end

function request()
  local key = table.remove(to_cancel, 1)   -- FIFO: no key waits behind newer ones
  if key then return wrk.format("DELETE", "/jobs/" .. key) end
  key = table.remove(to_poll, 1)
  if key then return wrk.format("GET", "/jobs/" .. key) end
  return wrk.format("GET", "/reports?steps=1")
end

function response(status, headers, body)
  local key = body:match('"key":"(%x+)"')
  if status == 202 and body:find('"status_url"', 1, true) and key then
    submitted = submitted + 1
    table.insert(to_poll, key)
  elseif body:find('"cancelled"', 1, true) then
    if status == 200 then cancelled = cancelled + 1
    elseif status == 409 then conflict = conflict + 1   -- already running: it finishes
    else
      other = other + 1
      other_statuses = other_statuses .. " " .. status
    end
  elseif status == 200 and key then
    polled = polled + 1
    table.insert(to_cancel, key)
  else
    other = other + 1
    other_statuses = other_statuses .. " " .. status
  end
end

function done(summary, latency, requests)
  local t = {submitted = 0, polled = 0, cancelled = 0, conflict = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + thread:get(name) end
  end
  local by_status, statuses = {}, ""
  for _, thread in ipairs(threads) do
    for code in thread:get("other_statuses"):gmatch("%d+") do
      by_status[code] = (by_status[code] or 0) + 1
    end
  end
  for code, n in pairs(by_status) do statuses = statuses .. " " .. code .. " x" .. n end
  io.write(string.format("cycle: submitted=%d polled=%d cancelled=%d conflict=%d other=%d%s\n",
                         t.submitted, t.polled, t.cancelled, t.conflict, t.other,
                         t.other > 0 and (" (statuses:" .. statuses .. ")") or ""))
end
LUA

# --- runs --------------------------------------------------------------------------------
declare -a NAMES RPS NON2XX COMMANDS
run() {
  local name="$1"; shift
  local cmd=(wrk "-t${THREADS}" "-c${CONNECTIONS}" "-d${DURATION}" "$@")
  printf '\n### %s\n$ %s\n' "${name}" "${cmd[*]}"
  local out
  out="$("${cmd[@]}" 2>&1)"
  printf '%s\n' "${out}"
  NAMES+=("${name}")
  RPS+=("$(awk '/^Requests\/sec:/ {print $2}' <<<"${out}")")
  NON2XX+=("$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"${out}" | grep . || echo 0)")
  COMMANDS+=("${cmd[*]}")
  LAST_OUTPUT="${out}"
}

run "(a) status polling: GET /jobs/<finished key>" "${BASE}/jobs/${KEY}"
run "(b) submit_stored cycle: /reports?steps=1 -> GET -> DELETE" -s "${WORK}/submit_cycle.lua" "${BASE}/"
CYCLE="$(grep '^cycle:' <<<"${LAST_OUTPUT}" || true)"
run "(c) baseline without the executor: GET /" "${BASE}/"

# --- summary -----------------------------------------------------------------------------
printf '\n## Summary (wrk -t%s -c%s -d%s, %s, %s)\n' "${THREADS}" "${CONNECTIONS}" "${DURATION}" \
  "$(nproc) CPUs" "$(uname -sr)"
printf '| %-58s | %12s | %9s |\n' "scenario" "requests/s" "non-2xx"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 1 60))" "$(printf -- '-%.0s' $(seq 1 14))" \
  "$(printf -- '-%.0s' $(seq 1 11))"
for i in "${!NAMES[@]}"; do
  printf '| %-58s | %12s | %9s |\n' "${NAMES[$i]}" "${RPS[$i]}" "${NON2XX[$i]}"
done
printf '\n(b) %s\n' "${CYCLE#cycle: }"
printf '    non-2xx in (b): 409 = DELETE of a job that already runs; 404 = a finished job evicted\n'
printf '    from the bounded collection (max 1000) before a late request reached the server (with\n'
printf '    more connections than its 8 server threads, the extra connections wait for a thread).\n'
printf '    The Lua script is in this file (submit_cycle.lua heredoc).\n'
printf '\nCommands:\n'
for c in "${COMMANDS[@]}"; do printf '  %s\n' "${c}"; done
