#!/usr/bin/env bash
# Runs webexec's process benchmarks and Python's ProcessPoolExecutor baseline
# (benchmarks/process_pool_baseline.py) side by side: `pairs` alternating
# pairs (webexec, Python, webexec, Python, ...), one repetition each, then
# prints the medians over the pairs and the median of the per-pair ratios.
# The head-of-line benchmark (webexec only, ~5 s an iteration) runs once at
# the end. Builds the release preset if needed.
#   bash benchmarks/process_benchmarks.sh [pairs=5]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs="${1:-5}"
bench=build/release/benchmarks/process_benchmark
if [[ ! -x "${bench}" ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target process_benchmark
fi
dir="$(mktemp -d)"
trap 'rm -rf "${dir}"' EXIT
echo "date $(date -u +%FT%TZ)  load average $(cut -d' ' -f1-3 /proc/loadavg)  pairs ${pairs}"
for ((i = 1; i <= pairs; ++i)); do
  "${bench}" --benchmark_filter='SubmitResult|PingPong|RecoveryAfterKill|LargePayload' \
    --benchmark_format=json >"${dir}/cpp.${i}.json"
  python3 benchmarks/process_pool_baseline.py 1 >"${dir}/py.${i}.txt"
  echo "pair ${i} done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
"${bench}" --benchmark_filter='HeadOfLine' --benchmark_format=json >"${dir}/hol.json"
python3 - "${dir}" "${pairs}" <<'PY'
import json, statistics, sys
d, pairs = sys.argv[1], int(sys.argv[2])
def cpp(i):
    runs = json.load(open(f"{d}/cpp.{i}.json"))["benchmarks"]
    by = {b["run_name"]: b for b in runs}
    return {
        "tp": by["BM_ProcessPool_SubmitResult/2/real_time"]["items_per_second"],
        "rt": by["BM_ProcessPool_PingPong/real_time"]["real_time"],
        "rec": by["BM_ProcessPool_RecoveryAfterKill/iterations:50/manual_time"]["real_time"],
        "lp": by["BM_ProcessPool_LargePayload/real_time"]["bytes_per_second"] / 1e6,
    }
def py(i):
    v = dict(line.split() for line in open(f"{d}/py.{i}.txt"))
    return {"tp": float(v["python_process_pool_throughput_per_s"]),
            "rt": float(v["python_process_pool_round_trip_us"]),
            "lp": float(v["python_process_pool_large_payload_mb_per_s"])}
c = [cpp(i) for i in range(1, pairs + 1)]
p = [py(i) for i in range(1, pairs + 1)]
med = statistics.median
def row(name, key, unit, higher_is_better=True, fmt="10.1f"):
    w, q = med(x[key] for x in c), med(x[key] for x in p)
    ratio = med((a[key] / b[key]) if higher_is_better else (b[key] / a[key]) for a, b in zip(c, p))
    print(f"{name:22} webexec {w:{fmt}} {unit:8} python {q:{fmt}} {unit:8} ratio {ratio:5.1f}x")
row("throughput", "tp", "jobs/s", fmt="10.0f")
row("round trip", "rt", "us", higher_is_better=False)
row("1 MiB args+results", "lp", "MB/s")
print(f"{'recovery after kill':22} webexec {med(x['rec'] for x in c):10.2f} ms (target < 50 ms)")
for b in json.load(open(f"{d}/hol.json"))["benchmarks"]:
    print(f"{b['run_name'].split('/iterations')[0]:28} median {b['real_time']:8.1f} ms"
          f"   worst {b['worst_ms']:8.1f} ms (target < 20 ms)")
PY
