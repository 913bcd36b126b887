#!/usr/bin/env bash
# What capturing the context costs: BM_Executor_SubmitInRequestContext
# against BM_ThreadPool_SubmitResult, one worker thread, measured in pairs.
#
# Each pair is one process that runs both benchmarks back to back, in random
# order. The machine is shared and its speed changes between runs (the same
# binary takes ~20 or ~80 ms per million tasks, depending on the host), so
# only the two halves of one pair are compared; the script prints every pair
# and the median of the ratios. Builds the release preset first.
#   bash benchmarks/capture_cost.sh [pairs]      (default 30)
# Prefix a command to run each pair under it, e.g. both threads on one CPU:
#   PIN="taskset -c 0" bash benchmarks/capture_cost.sh
# BENCH=path/to/thread_pool_benchmark measures another build (before/after).
#
# With --instructions it counts instructions instead of time (valgrind's
# callgrind, one iteration of a million tasks each): exact, and immune to the
# machine's noise. Counts cover the whole run, including the untimed freeing
# of the futures between iterations.
#   bash benchmarks/capture_cost.sh --instructions
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pairs="${1:-30}"
bench="${BENCH:-build/release/benchmarks/thread_pool_benchmark}"
if [[ -z "${BENCH:-}" ]]; then
  [[ -d build/release ]] || cmake --preset release >/dev/null
  cmake --build --preset release --target thread_pool_benchmark >/dev/null
fi
if [[ "${1:-}" == --instructions ]]; then
  dir="$(mktemp -d)"
  trap 'rm -rf "${dir}"' EXIT
  for b in BM_ThreadPool_SubmitResult BM_Executor_SubmitInRequestContext; do
    # Valgrind runs one thread at a time, so a run may add wake-ups that a
    # real one would not have: keep the lowest of three.
    for run in 1 2 3; do
      valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="${dir}/${b}.${run}" \
        "${bench}" --benchmark_filter="^${b}/1/" --benchmark_min_time=0.001 >/dev/null 2>&1
      # One file per thread: the submitting thread first, then the worker.
      cat "${dir}/${b}.${run}"-* | awk '/^summary:/ {printf "%.0f ", $2 / 1e6} END {print ""}'
    done | sort -n | head -1 | sed "s|^|${b}/1 instructions per task (submitting thread, worker): |"
  done
  exit 0
fi
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
for ((i = 0; i < pairs; ++i)); do
  # shellcheck disable=SC2086 # PIN is a command line on purpose
  ${PIN:-} "${bench}" --benchmark_min_time=0.3 \
    --benchmark_enable_random_interleaving=true --benchmark_format=csv \
    --benchmark_filter='^BM_ThreadPool_SubmitResult/1/|^BM_Executor_SubmitInRequestContext/1/' \
    2>/dev/null | grep -E '^"BM_' >>"${out}"
done
python3 - "${out}" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
ratios = []
print(f"{'pair':>4} {'bare ms':>8} {'in request ms':>14} {'ratio':>6}")
for n, (a, b) in enumerate(zip(rows[::2], rows[1::2]), 1):
    t = {r[0].split("/")[0].strip('"'): float(r[2]) for r in (a, b)}
    bare, ctx = t["BM_ThreadPool_SubmitResult"], t["BM_Executor_SubmitInRequestContext"]
    ratios.append(ctx / bare)
    print(f"{n:>4} {bare:>8.1f} {ctx:>14.1f} {ctx / bare:>6.3f}")
q = statistics.quantiles(ratios, n=4)
print(f"median ratio {statistics.median(ratios):.3f} (quartiles {q[0]:.3f} .. {q[2]:.3f}, "
      f"{len(ratios)} pairs): capturing the context costs "
      f"{(statistics.median(ratios) - 1) * 100:+.1f} %")
PY
