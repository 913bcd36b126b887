#!/usr/bin/env bash
# Runs webexec's process benchmarks and Python's ProcessPoolExecutor baseline
# in one go, and prints the ratios. Builds the release preset if needed.
#   bash benchmarks/process_benchmarks.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -x build/release/benchmarks/process_benchmark ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target process_benchmark
fi
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
build/release/benchmarks/process_benchmark --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_format=json >"${out}"
python3 benchmarks/process_pool_baseline.py 5 | tee -a "${out}.py"
python3 - "${out}" "${out}.py" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {b["run_name"]: b for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
py = dict(line.split() for line in open(sys.argv[2]))
tp = med["BM_ProcessPool_SubmitResult/2/real_time"]["items_per_second"]
rt = med["BM_ProcessPool_PingPong/real_time"]["real_time"]
rec = med["BM_ProcessPool_RecoveryAfterKill/iterations:50/manual_time"]["real_time"]
ptp = float(py["python_process_pool_throughput_per_s"])
prt = float(py["python_process_pool_round_trip_us"])
print(f"webexec throughput   {tp:10.0f} jobs/s   python {ptp:10.0f} jobs/s   ratio {tp/ptp:5.1f}x")
print(f"webexec round trip   {rt:10.1f} us       python {prt:10.1f} us       ratio {prt/rt:5.1f}x")
print(f"recovery after kill  {rec:10.2f} ms (median; target < 50 ms)")
PY
rm -f "${out}.py"
