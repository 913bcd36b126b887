#!/usr/bin/env bash
# benchmarks/http_load.sh: HTTP load on the example service (examples/service.cpp), direct
# and through nginx with deploy/nginx.conf, measured with wrk. Runs on the caller's thread;
# starts the service and nginx itself and stops both (only those two PIDs) on exit.
#
#   bash benchmarks/http_load.sh                       # 3 rounds of 5 s runs
#   ROUNDS=5 DURATION=10s bash benchmarks/http_load.sh
#   SERVICE_THREADS=8 bash benchmarks/http_load.sh     # the adapter's default threads
#
# Scenarios, each run on the same service direct and through nginx, as a pair (direct
# then nginx), every pair once per round; the summary quotes the median over the rounds:
#   root/8, root/16, root/256   GET / (no executor work): wrk -t2 -cN --latency,
#                               requests/s, p50, p99 (wrk's per-request latency);
#   paced/256                   GET / on 256 connections, each pausing PACE_MS between
#                               requests (benchmarks/paced.lua): latency when not
#                               saturated; a closed-loop run's latency is its own queue
#                               (N connections / throughput);
#   tiny/16, tiny/256           the seed's flow with unique keys (benchmarks/tiny_jobs.lua:
#                               GET /tiny submits a tiny stored job under a fresh key,
#                               GET /tiny/<key> is polled until done, which pops it):
#                               wrk -tN -cN, one connection per wrk thread, because wrk
#                               keeps one Lua state per thread; completed jobs/s and the
#                               job latency (submit sent -> "done" received) p50 and p99.
# Targets (issue 9): through nginx p99 <= 5 ms at 256 connections; through-nginx
# requests/s at 8 connections >= 80 % of direct; >= 20,000 jobs/s at 16 connections.
#
# The service runs with --threads SERVICE_THREADS (default 256): OSS nginx does not queue
# requests for a busy upstream, it opens another connection, so the service needs a
# thread for every request nginx may forward at once (at most one per client
# connection); see deploy/nginx.conf. nginx runs on loopback with a temporary prefix, as
# tests/deploy does. It builds the release preset's `service` target if needed and
# installs Debian's wrk and nginx if missing (needs root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
SERVICE_THREADS="${SERVICE_THREADS:-256}"
PACE_MS="${PACE_MS:-50}"
SERVICE="build/release/examples/service"
NGINX="/usr/sbin/nginx"

log() { printf '[http_load] %s\n' "$*" >&2; }

[[ "${ROUNDS}" =~ ^[1-9][0-9]?$ ]] || { log "error: ROUNDS='${ROUNDS}' is not 1..99"; exit 1; }
[[ "${SERVICE_THREADS}" =~ ^[1-9][0-9]*$ ]] || {
  log "error: SERVICE_THREADS='${SERVICE_THREADS}' is not a positive integer"; exit 1; }

# --- build and tools ---------------------------------------------------------------------
if [[ ! -f build/release/CMakeCache.txt ]]; then
  log "configuring the release preset"
  cmake --preset release >/dev/null
fi
log "building ${SERVICE} (release preset)"
cmake --build --preset release --target service >/dev/null
[[ -x "${SERVICE}" ]] || { log "error: ${SERVICE} was not built"; exit 1; }

need_package() {  # need_package <command> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    log "error: $1 is missing; install it as root: apt-get install $2"
    exit 1
  fi
  log "installing $2 (Debian package)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need_package wrk wrk
[[ -x "${NGINX}" ]] || need_package "${NGINX}" nginx-light

# --- start the service and nginx ---------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
SERVICE_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
DIRECT="http://127.0.0.1:${SERVICE_PORT}"
PROXIED="http://127.0.0.1:${NGINX_PORT}"
WORK="$(mktemp -d)"
SERVICE_PID=""
NGINX_PID=""

stop_pid() {  # stop_pid <pid>: SIGTERM, then SIGKILL after ~5 s; only our own children
  local pid="$1"
  [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 0
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
}
cleanup() {
  stop_pid "${NGINX_PID}"
  stop_pid "${SERVICE_PID}"
  rm -rf "${WORK}"
}
trap cleanup EXIT

wait_for() {  # wait_for <url> <pid> <log>: bounded (10 s) wait for GET / to answer 200
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1/" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { log "error: pid $2 exited"; cat "$3" >&2; exit 1; }
    sleep 0.1
  done
  log "error: $1 does not answer"; cat "$3" >&2; exit 1
}

"${SERVICE}" --port "${SERVICE_PORT}" --threads "${SERVICE_THREADS}" --no-access-log \
  >"${WORK}/service.log" 2>&1 &
SERVICE_PID=$!
wait_for "${DIRECT}" "${SERVICE_PID}" "${WORK}/service.log"

mkdir -p "${WORK}/nginx"
sed -e "s#@PREFIX@#${WORK}/nginx#g" -e "s#@LISTEN_PORT@#${NGINX_PORT}#g" \
  -e "s#@UPSTREAM_PORT@#${SERVICE_PORT}#g" deploy/nginx.conf >"${WORK}/nginx/nginx.conf"
"${NGINX}" -p "${WORK}/nginx" -c "${WORK}/nginx/nginx.conf" -g 'daemon off;' \
  >"${WORK}/nginx.log" 2>&1 &
NGINX_PID=$!
wait_for "${PROXIED}" "${NGINX_PID}" "${WORK}/nginx.log"
log "service pid ${SERVICE_PID} on ${DIRECT} (${SERVICE_THREADS} threads); nginx pid" \
  "${NGINX_PID} on ${PROXIED}"

# --- runs --------------------------------------------------------------------------------
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "${WORK}/runs"
# run <scenario> <round> <wrk args before the URL...> -- <args after it...>
run() {
  local scenario="$1" round="$2"; shift 2
  local before=() after=() seen=0
  for a in "$@"; do
    if [[ "${a}" == "--" && ${seen} -eq 0 ]]; then seen=1; continue; fi
    if [[ ${seen} -eq 0 ]]; then before+=("${a}"); else after+=("${a}"); fi
  done
  for target in direct nginx; do
    local url="${DIRECT}/"
    [[ "${target}" == nginx ]] && url="${PROXIED}/"
    local cmd=(wrk "${before[@]}" -d"${DURATION}" --latency "${url}")
    [[ ${#after[@]} -gt 0 ]] && cmd+=(-- "${after[@]}")
    local file="${WORK}/runs/${scenario//\//_}.${target}.${round}"
    printf '\n### round %s: %s %s\n$ %s\n' "${round}" "${scenario}" "${target}" "${cmd[*]}"
    "${cmd[@]}" >"${file}" 2>&1 || log "warning: wrk exited with $? (${scenario} ${target})"
    cat "${file}"
  done
}

for round in $(seq 1 "${ROUNDS}"); do
  log "round ${round}/${ROUNDS} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  run root/8 "${round}" -t2 -c8
  run root/16 "${round}" -t2 -c16
  run root/256 "${round}" -t2 -c256
  run paced/256 "${round}" -t2 -c256 -s benchmarks/paced.lua -- "${PACE_MS}"
  run tiny/16 "${round}" -t16 -c16 -s benchmarks/tiny_jobs.lua
  run tiny/256 "${round}" -t256 -c256 -s benchmarks/tiny_jobs.lua
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary -----------------------------------------------------------------------------
printf '\n## Summary: %s, %s CPUs, %s; load average %s before, %s after\n' "$(date -u '+%F %H:%M UTC')" \
  "$(nproc)" "$(uname -sr)" "${LOAD_BEFORE}" "${LOAD_AFTER}"
printf 'Medians of %s rounds of %s runs, each round a direct run then an nginx run per scenario;\n' \
  "${ROUNDS}" "${DURATION}"
printf 'service --threads %s, nginx %s with deploy/nginx.conf, paced: %s ms between requests.\n\n' \
  "${SERVICE_THREADS}" "$("${NGINX}" -v 2>&1 | sed 's#.*nginx/##')" "${PACE_MS}"
python3 - "${WORK}/runs" "${ROUNDS}" <<'PY'
import os, re, statistics, sys

runs, rounds = sys.argv[1], int(sys.argv[2])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}

def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNIT[m.group(2)] if m else float("nan")

def parse(path):
    out = {}
    with open(path) as f:
        text = f.read()
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        out["p" + pct] = ms(m.group(1)) if m else float("nan")
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["sock"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"^tiny_jobs: jobs=(\d+) jobs_per_s=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) "
                  r"polls_per_job=([\d.]+) errors=(\d+)", text, re.M)
    if m:
        out.update(jobs_s=float(m.group(2)), job_p50=float(m.group(3)),
                   job_p99=float(m.group(4)), polls=float(m.group(5)), errors=int(m.group(6)))
    return out

data = {}
for name in sorted(os.listdir(runs)):
    m = re.fullmatch(r"([a-z]+)_(\d+)\.(direct|nginx)\.(\d+)", name)
    if not m:
        continue
    scenario, target, rnd = f"{m.group(1)}/{m.group(2)}", m.group(3), int(m.group(4))
    data.setdefault(scenario, {}).setdefault(target, {})[rnd] = parse(os.path.join(runs, name))

def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")

order = ["root/8", "root/16", "root/256", "paced/256", "tiny/16", "tiny/256"]
print("| scenario | via | requests/s | p50 ms | p99 ms | jobs/s | job p50 ms | job p99 ms | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
for scenario in order:
    for target in ("direct", "nginx"):
        rs = list(data.get(scenario, {}).get(target, {}).values())
        if not rs:
            continue
        row = {k: med([r.get(k, float("nan")) for r in rs])
               for k in ("rps", "p50", "p99", "jobs_s", "job_p50", "job_p99")}
        errors = sum(r["sock"] + r["non2xx"] + r.get("errors", 0) for r in rs)
        summary[(scenario, target)] = row
        tiny = scenario.startswith("tiny")
        fmt = lambda v, f: "" if v != v else f % v
        print(f"| {scenario} | {target} | {fmt(row['rps'], '%.0f')} | {fmt(row['p50'], '%.3f')} | "
              f"{fmt(row['p99'], '%.3f')} | {fmt(row['jobs_s'], '%.0f') if tiny else ''} | "
              f"{fmt(row['job_p50'], '%.3f') if tiny else ''} | "
              f"{fmt(row['job_p99'], '%.3f') if tiny else ''} | {errors} |")

def pair_ratio(scenario, key):
    d = data.get(scenario, {})
    ratios = [d["nginx"][r][key] / d["direct"][r][key] for r in d.get("direct", {})
              if r in d.get("nginx", {}) and d["direct"][r][key] > 0]
    return med(ratios), ratios

print()
ratio, ratios = pair_ratio("root/8", "rps")
print("through nginx / direct at 8 connections, median of the per-round ratios: %.0f %% (%s)"
      % (100 * ratio, ", ".join("%.0f %%" % (100 * r) for r in ratios)))
checks = [
    ("through nginx, p99 at 256 connections <= 5 ms",
     summary.get(("root/256", "nginx"), {}).get("p99", float("nan")), lambda v: v <= 5, "%.2f ms"),
    ("through nginx, paced p99 at 256 connections <= 5 ms",
     summary.get(("paced/256", "nginx"), {}).get("p99", float("nan")), lambda v: v <= 5, "%.2f ms"),
    ("through nginx at 8 connections >= 80 % of direct", 100 * ratio, lambda v: v >= 80, "%.0f %%"),
    ("jobs/s at 16 connections, direct >= 20,000",
     summary.get(("tiny/16", "direct"), {}).get("jobs_s", float("nan")), lambda v: v >= 20000, "%.0f"),
    ("jobs/s at 16 connections, through nginx >= 20,000",
     summary.get(("tiny/16", "nginx"), {}).get("jobs_s", float("nan")), lambda v: v >= 20000, "%.0f"),
]
for text, value, ok, fmt in checks:
    print("target: %-52s %-10s %s" % (text, fmt % value, "met" if value == value and ok(value) else "MISSED"))
PY
