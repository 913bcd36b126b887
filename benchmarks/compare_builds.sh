#!/usr/bin/env bash
# Two builds of thread_pool_benchmark side by side (before/after a change):
# `rounds` rounds, each running OLD then NEW as separate processes (one
# process runs BM_ThreadPool_SubmitResult/1 and BM_Executor_SubmitInRequestContext/1
# back to back, in random order). Prints, per build, the median capture cost
# (in-request / bare, as capture_cost.sh) and, across builds, the median of the
# per-round ratios NEW/OLD for each benchmark. Only ratios of one round are
# compared: the machine's speed changes between runs.
#   bash benchmarks/compare_builds.sh OLD_BINARY NEW_BINARY [rounds=40]
set -euo pipefail
old="${1:?usage: compare_builds.sh OLD_BINARY NEW_BINARY [rounds]}"
new="${2:?usage: compare_builds.sh OLD_BINARY NEW_BINARY [rounds]}"
rounds="${3:-40}"
out="$(mktemp)"
trap 'rm -f "${out}"' EXIT
for ((i = 0; i < rounds; ++i)); do
  for b in "${old}" "${new}"; do
    printf '%s ' "$([[ "${b}" == "${old}" ]] && echo old || echo new)" >>"${out}"
    "${b}" --benchmark_min_time=0.3 --benchmark_enable_random_interleaving=true \
      --benchmark_format=csv \
      --benchmark_filter='^BM_ThreadPool_SubmitResult/1/|^BM_Executor_SubmitInRequestContext/1/' \
      2>/dev/null | grep -E '^"BM_' | sort | cut -d, -f3 | tr '\n' ' ' >>"${out}"
    echo >>"${out}"
  done
done
python3 - "${out}" <<'PY'
import statistics, sys
rows = {"old": [], "new": []}
for line in open(sys.argv[1]):
    who, ctx, bare = line.split()  # sorted: BM_Executor... before BM_ThreadPool...
    rows[who].append((float(bare), float(ctx)))
def summary(values):
    q = statistics.quantiles(values, n=4)
    return f"median {statistics.median(values):.3f} (quartiles {q[0]:.3f} .. {q[2]:.3f})"
for who in ("old", "new"):
    print(f"{who}: capture cost in-request/bare {summary([c / b for b, c in rows[who]])}")
for i, name in ((0, "BM_ThreadPool_SubmitResult/1"), (1, "BM_Executor_SubmitInRequestContext/1")):
    ratios = [n[i] / o[i] for o, n in zip(rows["old"], rows["new"])]
    print(f"new/old {name}: {summary(ratios)}, {len(ratios)} rounds")
PY
