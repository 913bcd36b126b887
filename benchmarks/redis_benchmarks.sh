#!/usr/bin/env bash
# benchmarks/redis_benchmarks.sh: webexec's redis engine against BullMQ and Celery (issue
# 10, "Speed"), side by side in one run against ONE redis-server that the script starts
# itself (127.0.0.1, a free random port, a temporary directory, `--save '' --appendonly
# no`, killed on exit). Every system gets the same workload, with one worker process
# running 2 job threads or processes, and the server is flushed (FLUSHALL) before each:
#
#   throughput  20,000 tiny jobs (add two small ints), enqueued back to back by one
#               producer; jobs/s from the first enqueue to the last result received by
#               the producer. Each producer warms up first (500 jobs, which also waits
#               until its worker consumes), so worker start-up is not timed.
#   ping-pong   500 sequential jobs, each submitted only after the previous result
#               reached the producer; round trip p50 and p99 in ms.
#
#   bash benchmarks/redis_benchmarks.sh                  # one round: webexec, BullMQ, Celery
#   ROUNDS=3 bash benchmarks/redis_benchmarks.sh         # medians of 3 alternating rounds
#   SYSTEMS="bullmq celery" JOBS=5000 bash benchmarks/redis_benchmarks.sh
#
# Environment: ROUNDS (1), SYSTEMS ("webexec bullmq celery", run in that order each
# round), JOBS (20000), ROUND_TRIPS (500), WARMUP (500), TIMEOUT (600: seconds one
# system's producer may run before it is killed and the system reported failed; the
# drivers' own waits give up after TIMEOUT/2 with a message naming what they waited
# for), REDIS_ARGS (more redis-server arguments, e.g. "--appendonly yes --appendfsync
# everysec"), CELERY_PYTHON (/usr/bin/python3: Debian's python3-celery lives there, not
# in a pyenv python3), CELERY_WAIT (poll: get_many(); native: join_native(), pub/sub, for
# Celery's throughput run), WEBEXEC_BENCH (build/release/benchmarks/redis_benchmark),
# WEBEXEC_BENCH_ARGS (extra arguments for it).
#
# The systems and how each producer observes completion (the fastest honest way each
# offers; details in the drivers' headers):
#   BullMQ   npm bullmq 6.7.0 + ioredis 5.11.1 on Node 20, pinned in
#            benchmarks/redis_baselines/package-lock.json and installed here with
#            `npm ci` (benchmarks/redis_baselines/bullmq_bench.js). One Node worker
#            process, Worker concurrency 2. Producer: queue.add() per job, not awaited
#            one by one (ioredis pipelines them); completion from one QueueEvents
#            listener (XREAD on the events stream); ping-pong with
#            job.waitUntilFinished(). db 0.
#   Celery   Debian's python3-celery 5.2.6 + python3-redis 4.3.4
#            (benchmarks/redis_baselines/celery_bench.py). `celery worker --pool
#            prefork --concurrency 2 --without-gossip --without-mingle
#            --without-heartbeat`, json serializer, redis broker (db 3) and result
#            backend (db 4). Producer: add.delay() per job; the throughput run waits
#            with the result backend's get_many() (MGET of the missing results every
#            5 ms), which was faster here than ResultSet.join_native() (pub/sub);
#            ping-pong with AsyncResult.get() (pub/sub).
#   webexec  build/release/benchmarks/redis_benchmark, if it exists (not built by this
#            script); otherwise the run says so and reports the baselines alone. db 2.
#
# Output contract for build/release/benchmarks/redis_benchmark (webexec's side; the two
# drivers above meet it too, and all three are parsed the same way):
#   - invoked as `redis_benchmark --redis-url redis://127.0.0.1:PORT/2 $WEBEXEC_BENCH_ARGS`
#     against the already flushed server; with no other argument it runs the defaults
#     above (20,000 throughput jobs after a warm-up, 500 ping-pong round trips);
#   - it starts its own worker (one process, 2 job threads, the redis engine's worker
#     mode), waits for it before timing, checks every result, and stops the worker
#     before it exits;
#   - on success it exits 0 and prints on stdout, one per line (other lines ignored):
#       throughput_jobs_per_s=<float>
#       roundtrip_p50_ms=<float>
#       roundtrip_p99_ms=<float>     (optional: shown as "-" if absent)
#   - on a lost or wrong result or a timeout it exits non-zero with a message on stderr,
#     within TIMEOUT seconds (after that the script kills its process group).
#
# Summary: a table of jobs/s, p50 and p99 per system (medians over the rounds) and, when
# webexec has figures, the issue's targets as medians of the per-round ratios:
# webexec/BullMQ throughput >= 1, webexec/Celery throughput >= 10, webexec p50 /
# BullMQ p50 <= 0.5. Every process it starts runs in its own process group (setsid) and
# is stopped by group id: workers after their system's run, everything on exit. Needs
# redis-server, node >= 20 and npm; installs Debian's python3-celery and python3-redis if
# missing (scripts/setup.sh's webexec_install_benchmark_deps; root or sudo).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS="${ROUNDS:-1}"
SYSTEMS="${SYSTEMS:-webexec bullmq celery}"
JOBS="${JOBS:-20000}"
ROUND_TRIPS="${ROUND_TRIPS:-500}"
WARMUP="${WARMUP:-500}"
TIMEOUT="${TIMEOUT:-600}"
REDIS_ARGS="${REDIS_ARGS:-}"
CELERY_PYTHON="${CELERY_PYTHON:-/usr/bin/python3}"
CELERY_WAIT="${CELERY_WAIT:-poll}"
WEBEXEC_BENCH="${WEBEXEC_BENCH:-build/release/benchmarks/redis_benchmark}"
WEBEXEC_BENCH_ARGS="${WEBEXEC_BENCH_ARGS:-}"
BASELINES=benchmarks/redis_baselines

log() { printf '[redis_benchmarks] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in ROUNDS JOBS ROUND_TRIPS WARMUP TIMEOUT; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "${v}='${!v}' is not a positive integer"
done
[[ "${CELERY_WAIT}" =~ ^(poll|native)$ ]] || die "CELERY_WAIT='${CELERY_WAIT}' is not poll or native"
for s in ${SYSTEMS}; do
  [[ "${s}" =~ ^(webexec|bullmq|celery)$ ]] || die "SYSTEMS: unknown system '${s}'"
done
DRIVER_TIMEOUT=$((TIMEOUT / 2 > 0 ? TIMEOUT / 2 : 1))

# --- tools -------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  die "redis-server is missing: bash scripts/setup.sh (Debian's redis-server)"
fi
if [[ " ${SYSTEMS} " == *" celery "* ]] &&
  ! "${CELERY_PYTHON}" -c 'import celery, redis' 2>/dev/null; then
  log "Celery is missing for ${CELERY_PYTHON}: installing Debian's python3-celery and python3-redis"
  # shellcheck source=scripts/setup.sh disable=SC1091
  source scripts/setup.sh
  webexec_install_benchmark_deps
  "${CELERY_PYTHON}" -c 'import celery, redis' ||
    die "${CELERY_PYTHON} cannot import celery and redis (set CELERY_PYTHON to Debian's python3)"
fi
if [[ " ${SYSTEMS} " == *" bullmq "* ]]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "BullMQ needs node 20 and npm"
  fi
  [[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]] ||
    die "BullMQ needs node >= 20, found $(node --version)"
  # npm ci when node_modules is missing or older than the lock file.
  if [[ ! -f "${BASELINES}/node_modules/.package-lock.json" ||
    "${BASELINES}/package-lock.json" -nt "${BASELINES}/node_modules/.package-lock.json" ]]; then
    log "installing BullMQ (npm ci in ${BASELINES})"
    (cd "${BASELINES}" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) >&2 ||
      die "npm ci failed (or took over 600 s) in ${BASELINES}"
  fi
fi

# --- processes: each in its own process group, stopped by group id ------------------------
WORK="$(mktemp -d)"
REDIS_PID=""
GROUPS_STARTED=()

start_group() {  # start_group <log> <command...>: runs it in a new session; sets STARTED_PID
  local out="$1"; shift
  setsid "$@" >"${out}" 2>&1 </dev/null &
  STARTED_PID=$!
  GROUPS_STARTED+=("${STARTED_PID}")
}
stop_group() {  # stop_group <pid>: SIGTERM to its group, SIGKILL after ~10 s
  local pid="$1"
  [[ -n "${pid}" ]] || return 0
  kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 -- "-${pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-${pid}" 2>/dev/null || true
  wait "${pid}" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${GROUPS_STARTED[@]}"; do stop_group "${pid}"; done
  rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# --- redis-server ------------------------------------------------------------------------
start_redis() {  # bounded: up to 5 ports, 10 s each to answer PING
  local attempt
  for attempt in 1 2 3 4 5; do
    PORT="$(free_port)"
    # shellcheck disable=SC2086 # REDIS_ARGS is a list of arguments on purpose
    start_group "${WORK}/redis.log" redis-server --bind 127.0.0.1 --port "${PORT}" \
      --dir "${WORK}" --save '' --appendonly no --daemonize no ${REDIS_ARGS}
    REDIS_PID="${STARTED_PID}"
    for _ in $(seq 1 100); do
      [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "${PORT}" ping 2>/dev/null)" == PONG ]] && return 0
      kill -0 "${REDIS_PID}" 2>/dev/null || break
      sleep 0.1
    done
    log "redis-server on port ${PORT} did not come up (attempt ${attempt}):"
    tail -5 "${WORK}/redis.log" >&2
    stop_group "${REDIS_PID}"
  done
  die "could not start redis-server"
}
start_redis
REDIS="redis://127.0.0.1:${PORT}"
rcli() { timeout 30 redis-cli -h 127.0.0.1 -p "${PORT}" "$@"; }

# run_bounded <seconds> <log> <command...>: runs it in its own group and waits at most
# <seconds>; returns its exit status, or 124 after killing the group on a timeout.
run_bounded() {
  local limit="$1" out="$2"; shift 2
  start_group "${out}" "$@"
  local pid="${STARTED_PID}" ticks=0
  while kill -0 "${pid}" 2>/dev/null; do
    if ((ticks >= limit * 10)); then
      log "timed out after ${limit} s: $*"
      stop_group "${pid}"
      return 124
    fi
    sleep 0.1
    ticks=$((ticks + 1))
  done
  local rc=0
  wait "${pid}" || rc=$?
  return "${rc}"
}

# --- the systems -------------------------------------------------------------------------
RESULTS="${WORK}/results"
: >"${RESULTS}"
FAILED=()
WORKER_PID=""

# record <round> <system> <producer output file>: appends the contract's lines to RESULTS
# if both required ones are there; fails otherwise.
record() {
  local line lines=()
  while IFS= read -r line; do
    if [[ "${line}" =~ ^(throughput_jobs_per_s|roundtrip_p50_ms|roundtrip_p99_ms)=([0-9.eE+-]+)$ ]]; then
      lines+=("$1 $2 ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}")
    fi
  done <"$3"
  [[ " ${lines[*]} " == *" throughput_jobs_per_s "* && " ${lines[*]} " == *" roundtrip_p50_ms "* ]] ||
    return 1
  printf '%s\n' "${lines[@]}" >>"${RESULTS}"
}

# run_system <round> <system>: flush, start its worker, run its producer, stop the worker.
run_system() {
  local round="$1" system="$2" out="${WORK}/$2.$1.out" wlog="${WORK}/$2.$1.worker.log"
  local producer=() rc=0
  [[ "$(rcli flushall)" == OK ]] || die "FLUSHALL failed (redis-server pid ${REDIS_PID})"
  WORKER_PID=""
  case "${system}" in
    webexec)
      if [[ ! -x "${WEBEXEC_BENCH}" ]]; then
        echo "webexec: redis engine not built yet (no ${WEBEXEC_BENCH})"
        echo "${round} ${system} status not-built" >>"${RESULTS}"
        return 0
      fi
      # shellcheck disable=SC2086,SC2206 # WEBEXEC_BENCH_ARGS is a list of arguments on purpose
      producer=("${WEBEXEC_BENCH}" --redis-url "${REDIS}/2" ${WEBEXEC_BENCH_ARGS})
      ;;
    bullmq)
      start_group "${wlog}" node "${BASELINES}/bullmq_bench.js" worker \
        --redis-url "${REDIS}/0" --concurrency 2
      WORKER_PID="${STARTED_PID}"
      producer=(node "${BASELINES}/bullmq_bench.js" producer --redis-url "${REDIS}/0"
        --jobs "${JOBS}" --round-trips "${ROUND_TRIPS}" --warmup "${WARMUP}"
        --timeout "${DRIVER_TIMEOUT}")
      ;;
    celery)
      start_group "${wlog}" env PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="${BASELINES}" \
        CELERY_BROKER_URL="${REDIS}/3" CELERY_RESULT_BACKEND="${REDIS}/4" \
        "${CELERY_PYTHON}" -m celery -A celery_bench worker --pool prefork --concurrency 2 \
        --without-gossip --without-mingle --without-heartbeat --loglevel WARNING
      WORKER_PID="${STARTED_PID}"
      producer=(env PYTHONDONTWRITEBYTECODE=1 CELERY_BROKER_URL="${REDIS}/3"
        CELERY_RESULT_BACKEND="${REDIS}/4" "${CELERY_PYTHON}" "${BASELINES}/celery_bench.py"
        --jobs "${JOBS}" --round-trips "${ROUND_TRIPS}" --warmup "${WARMUP}"
        --timeout "${DRIVER_TIMEOUT}" --wait "${CELERY_WAIT}")
      ;;
  esac
  run_bounded "${TIMEOUT}" "${out}" "${producer[@]}" || rc=$?
  if [[ -n "${WORKER_PID}" ]]; then
    if ! kill -0 "${WORKER_PID}" 2>/dev/null; then
      log "${system}: its worker exited before the producer finished"
      ((rc != 0)) || rc=1
    fi
    stop_group "${WORKER_PID}"
  fi
  if ((rc != 0)) || ! record "${round}" "${system}" "${out}"; then
    ((rc != 0)) || log "${system}: no throughput_jobs_per_s= and roundtrip_p50_ms= lines"
    log "${system}, round ${round}: FAILED (exit ${rc}); producer output:"
    sed 's/^/    /' "${out}" >&2
    if [[ -f "${wlog}" ]]; then
      log "${system}: last lines of its worker's log:"
      tail -15 "${wlog}" | sed 's/^/    /' >&2
    fi
    FAILED+=("${system}/${round}")
    echo "${round} ${system} status failed" >>"${RESULTS}"
    return 0
  fi
  printf '%-8s round %s: %s\n' "${system}" "${round}" \
    "$(grep -E '^(throughput_jobs_per_s|roundtrip_p50_ms|roundtrip_p99_ms)=' "${out}" | tr '\n' ' ')"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
printf '# %s, %s CPUs, load average %s; redis-server %s on port %s (pid %s)\n' \
  "$(date -u '+%F %H:%M UTC')" "$(nproc)" "${LOAD_BEFORE}" \
  "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" "${PORT}" "${REDIS_PID}"
printf '# commit %s; %s rounds of %s jobs and %s round trips (warm-up %s); systems: %s\n' \
  "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "${ROUNDS}" "${JOBS}" \
  "${ROUND_TRIPS}" "${WARMUP}" "${SYSTEMS}"
if [[ " ${SYSTEMS} " == *" bullmq "* ]]; then
  printf '# BullMQ %s, ioredis %s, node %s\n' \
    "$(node -p "require('./${BASELINES}/node_modules/bullmq/package.json').version")" \
    "$(node -p "require('./${BASELINES}/node_modules/ioredis/package.json').version")" \
    "$(node --version)"
fi
if [[ " ${SYSTEMS} " == *" celery "* ]]; then
  "${CELERY_PYTHON}" -c 'import celery, kombu, redis, sys
print(f"# Celery {celery.__version__}, kombu {kombu.__version__}, redis-py {redis.__version__}, "
      f"python {sys.version.split()[0]} ({sys.executable})")'
fi
if [[ " ${SYSTEMS} " == *" webexec "* && -x "${WEBEXEC_BENCH}" ]] &&
  { [[ "${JOBS}" != 20000 || "${ROUND_TRIPS}" != 500 ]] && [[ -z "${WEBEXEC_BENCH_ARGS}" ]]; }; then
  log "warning: JOBS/ROUND_TRIPS changed, but ${WEBEXEC_BENCH} runs its own defaults" \
    "unless WEBEXEC_BENCH_ARGS says otherwise"
fi

for round in $(seq 1 "${ROUNDS}"); do
  for system in ${SYSTEMS}; do
    log "round ${round}/${ROUNDS}: ${system} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run_system "${round}" "${system}"
  done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- summary -----------------------------------------------------------------------------
printf '\n## Summary: load average %s before, %s after; medians over %s round(s)\n\n' \
  "${LOAD_BEFORE}" "${LOAD_AFTER}" "${ROUNDS}"
python3 - "${RESULTS}" "${SYSTEMS}" <<'PY'
import statistics, sys

rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
systems = sys.argv[2].split()
data = {}    # system -> round -> key -> value, for the rounds it completed
status = {}  # system -> set of "failed" / "not-built"
for rnd, system, key, value in rows:
    if key == "status":
        status.setdefault(system, set()).add(value)
    else:
        data.setdefault(system, {}).setdefault(rnd, {})[key] = float(value)

def med(values):
    values = list(values)
    return statistics.median(values) if values else None

def fmt(value, spec):
    return "-" if value is None else format(value, spec)

names = {"webexec": "webexec", "bullmq": "BullMQ", "celery": "Celery"}
print("| system | jobs/s | p50 ms | p99 ms | rounds |")
print("|---|---:|---:|---:|---:|")
for system in systems:
    rounds = data.get(system, {})
    notes = ", ".join(sorted(status.get(system, ())))
    if not rounds:
        print(f"| {names[system]} | - | - | - | 0 ({notes or 'not run'}) |")
        continue
    tp = med(r["throughput_jobs_per_s"] for r in rounds.values())
    p50 = med(r["roundtrip_p50_ms"] for r in rounds.values())
    p99 = med(r["roundtrip_p99_ms"] for r in rounds.values() if "roundtrip_p99_ms" in r)
    print(f"| {names[system]} | {fmt(tp, ',.0f')} | {fmt(p50, '.3f')} | {fmt(p99, '.3f')} | "
          f"{len(rounds)}{' (also ' + notes + ')' if notes else ''} |")
print()

def ratio(num_system, den_system, key):
    """Median over the rounds both systems completed of num/den."""
    a, b = data.get(num_system, {}), data.get(den_system, {})
    return med(a[r][key] / b[r][key] for r in a if r in b and b[r][key] > 0)

if not data.get("webexec"):
    print("targets: no webexec figures in this run (ratios need build/release/benchmarks/"
          "redis_benchmark)")
else:
    checks = [
        ("webexec / BullMQ throughput", ratio("webexec", "bullmq", "throughput_jobs_per_s"),
         lambda v: v >= 1, ">= 1"),
        ("webexec / Celery throughput", ratio("webexec", "celery", "throughput_jobs_per_s"),
         lambda v: v >= 10, ">= 10"),
        ("webexec p50 / BullMQ p50", ratio("webexec", "bullmq", "roundtrip_p50_ms"),
         lambda v: v <= 0.5, "<= 0.5"),
    ]
    for text, value, ok, target in checks:
        verdict = "not measured" if value is None else ("met" if ok(value) else "MISSED")
        shown = "-" if value is None else f"{value:.2f}x"
        print(f"target: {text:30} {shown:>8}  (target {target:6})  {verdict}")
PY

if ((${#FAILED[@]} > 0)); then
  die "failed: ${FAILED[*]} (see the messages above)"
fi
