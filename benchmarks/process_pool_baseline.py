#!/usr/bin/env python3
"""Python's concurrent.futures.ProcessPoolExecutor on the workloads of
benchmarks/process_benchmark.cpp (run by benchmarks/process_benchmarks.sh):

- throughput: 20,000 tiny jobs (submit all, then result() each), 2 workers;
- round trip: submit/result of one tiny job at a time, 1 worker;
- large payload: 32 jobs whose argument is 1 MiB of random `bytes` and
  whose result is the same bytes, 2 workers; MB/s counts arguments and
  results (2 MiB a job), 1 MB = 10**6 bytes.

Prints the median of `reps` repetitions (argument 1, default 5), one
`name value` line each."""
import concurrent.futures as cf
import random
import statistics
import sys
import time


def add(a, b):
    return a + b


def echo(data):
    return data


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


def large_payload(jobs=32, size=1 << 20, workers=2):
    data = random.Random(42).randbytes(size)
    with cf.ProcessPoolExecutor(max_workers=workers) as ex:
        # Both workers started, one round of the workload done.
        for f in [ex.submit(echo, data) for _ in range(workers)]:
            assert f.result() == data
        start = time.perf_counter()
        futures = [ex.submit(echo, data) for _ in range(jobs)]
        for f in futures:
            f.result()
        return jobs * 2 * size / (time.perf_counter() - start) / 1e6


if __name__ == "__main__":
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tp = statistics.median(throughput() for _ in range(reps))
    rt = statistics.median(round_trip() for _ in range(reps))
    lp = statistics.median(large_payload() for _ in range(reps))
    print(f"python_process_pool_throughput_per_s {tp:.0f}")
    print(f"python_process_pool_round_trip_us {rt:.1f}")
    print(f"python_process_pool_large_payload_mb_per_s {lp:.1f}")
