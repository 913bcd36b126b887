#!/usr/bin/env python3
"""Python's concurrent.futures.ProcessPoolExecutor on the workload of
benchmarks/process_benchmark.cpp: 20,000 tiny jobs (submit all, then
result() each) on 2 workers, and a submit/result round trip on 1 worker.
Prints the median of several repetitions."""
import concurrent.futures as cf
import statistics
import sys
import time


def add(a, b):
    return a + b


def throughput(jobs=20_000, workers=2):
    with cf.ProcessPoolExecutor(max_workers=workers) as ex:
        ex.submit(add, 0, 0).result()
        start = time.perf_counter()
        futures = [ex.submit(add, i, i) for i in range(jobs)]
        for f in futures:
            f.result()
        return jobs / (time.perf_counter() - start)


def round_trip(n=2_000):
    with cf.ProcessPoolExecutor(max_workers=1) as ex:
        ex.submit(add, 0, 0).result()
        start = time.perf_counter()
        for _ in range(n):
            ex.submit(add, 1, 2).result()
        return (time.perf_counter() - start) / n * 1e6


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tp = statistics.median(throughput() for _ in range(reps))
    rt = statistics.median(round_trip() for _ in range(reps))
    print(f"python_process_pool_throughput_per_s {tp:.0f}")
    print(f"python_process_pool_round_trip_us {rt:.1f}")
