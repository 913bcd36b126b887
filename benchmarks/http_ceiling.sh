#!/usr/bin/env bash
# benchmarks/http_ceiling.sh: the example service against its ceiling, side by side. The
# ceiling (benchmarks/httplib_ceiling.cpp) is plain httplib with the same server settings
# and tiny-job routes and no webexec; every round runs each scenario on the service, then
# on the ceiling, and the summary quotes the medians over the rounds and the median of the
# per-round ratios. Both servers run --threads SERVICE_THREADS, started and stopped here
# (only their own PIDs). wrk and the servers share the machine's cores.
#
#   bash benchmarks/http_ceiling.sh                  # 5 rounds of 5 s runs
#   ROUNDS=3 DURATION=3s bash benchmarks/http_ceiling.sh
#
# Scenarios: root/16 (wrk -t2 -c16 GET /) and tiny/16 (wrk -t16 -c16 with
# benchmarks/tiny_jobs.lua: submit, poll until done), as in benchmarks/http_load.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5s}"
SERVICE_THREADS="${SERVICE_THREADS:-256}"
SERVICE_PORT="${SERVICE_PORT:-18180}"
CEILING_PORT="${CEILING_PORT:-18181}"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cmake --preset release >/dev/null
cmake --build --preset release --target service httplib_ceiling >/dev/null

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done; }
trap cleanup EXIT

build/release/examples/service --port "${SERVICE_PORT}" --threads "${SERVICE_THREADS}" \
  --no-access-log >/dev/null &
pids+=("$!")
build/release/benchmarks/httplib_ceiling --port "${CEILING_PORT}" \
  --threads "${SERVICE_THREADS}" >/dev/null &
pids+=("$!")
for port in "${SERVICE_PORT}" "${CEILING_PORT}"; do
  for _ in $(seq 1 100); do  # bounded: 10 s
    curl -fsS "http://127.0.0.1:${port}/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:${port}/" >/dev/null
done

results="$(mktemp)"
trap 'cleanup; rm -f "${results}"' EXIT
printf 'date %s  load average %s  rounds %s of %s\n' "$(date -u +%FT%TZ)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "${ROUNDS}" "${DURATION}"
for round in $(seq 1 "${ROUNDS}"); do
  for target in service ceiling; do
    port="${SERVICE_PORT}"
    [[ "${target}" == ceiling ]] && port="${CEILING_PORT}"
    rps="$(wrk -t2 -c16 -d"${DURATION}" "http://127.0.0.1:${port}/" |
      awk '/^Requests\/sec/ {print $2}')"
    echo "${round} root/16 ${target} ${rps}" >>"${results}"
    jobs="$(wrk -t16 -c16 -d"${DURATION}" -s benchmarks/tiny_jobs.lua "http://127.0.0.1:${port}/" |
      sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p')"
    echo "${round} tiny/16 ${target} ${jobs}" >>"${results}"
  done
  printf 'round %s done, load average %s\n' "${round}" "$(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "${results}" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for scenario, unit in (("root/16", "requests/s"), ("tiny/16", "jobs/s")):
    by_round = {}
    for rnd, sc, target, value in rows:
        if sc == scenario:
            by_round.setdefault(rnd, {})[target] = float(value)
    pairs = [r for r in by_round.values() if len(r) == 2 and r["ceiling"] > 0]
    service = statistics.median(r["service"] for r in pairs)
    ceiling = statistics.median(r["ceiling"] for r in pairs)
    ratio = statistics.median(r["service"] / r["ceiling"] for r in pairs)
    print(f"{scenario:8} service {service:9.0f} {unit}   ceiling {ceiling:9.0f} {unit}"
          f"   service/ceiling {ratio * 100:5.1f} %  ({len(pairs)} rounds)")
EOF
