"""Celery side of benchmarks/redis_benchmarks.sh (see that script's header).

The Celery app and its one task (add two small ints), and the producer:

    CELERY_BROKER_URL=redis://127.0.0.1:PORT/3 CELERY_RESULT_BACKEND=redis://127.0.0.1:PORT/4 \\
      /usr/bin/python3 -m celery -A celery_bench worker --pool prefork --concurrency 2
    CELERY_BROKER_URL=... CELERY_RESULT_BACKEND=... \\
      /usr/bin/python3 celery_bench.py [--jobs 20000] [--round-trips 500] [--warmup 500] \\
        [--timeout 120] [--wait poll|native] [--poll-interval 0.005]

Run from this directory (or with it on PYTHONPATH) with Debian's python3-celery 5.2 and
python3-redis. Serializer: json for tasks and results. The producer warms up with join_native()
(which also waits until the worker consumes, so its start-up is not timed), then:

  throughput  `jobs` calls of add.delay() in a loop (one LPUSH each on the broker
              connection), then the result backend's get_many(): MGET of the results
              still missing every --poll-interval seconds (default 5 ms), each result
              checked. The clock runs from the first delay() to the last result read.
              This was faster here than ResultSet.join_native() (the redis backend's
              pub/sub path: 480-630 against 800-1,240 jobs/s in 4,000-job runs on the
              loaded 2-core machine); `--wait native` measures that path instead.
              delay() still SUBSCRIBEs to each task's result channel, as Celery does
              for every call; the unread messages stay buffered on that connection
              (about 6 MB for 20,000 jobs, under redis's 8 MB pub/sub soft limit).
  ping-pong   `round-trips` times: add.delay() one job, AsyncResult.get() it (the redis
              backend's pub/sub path: no polling delay), then the next; p50 and p99.
              It runs before the throughput run, whose unread messages would
              otherwise be drained by the first get().

It prints the output contract of redis_benchmarks.sh:
  throughput_jobs_per_s=<x>  roundtrip_p50_ms=<y>  roundtrip_p99_ms=<z>
and exits non-zero, naming what it waited for, if a wait takes longer than --timeout
seconds or a result is wrong.
"""

import argparse
import math
import os
import sys
import time

from celery import Celery
from celery.result import ResultSet

app = Celery(
    "celery_bench",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/3"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/4"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue="webexec-bench",
    worker_hijack_root_logger=False,
    # Everything else stays at Celery 5.2's defaults (prefetch multiplier 4, early acks).
)


@app.task(name="celery_bench.add")
def add(a, b):
    return a + b


def fail(message):
    print(f"celery_bench: error: {message}", file=sys.stderr)
    sys.exit(1)


def percentile(sorted_values, p):
    """Nearest rank, as bullmq_bench.js does."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def burst(count, opts, what):
    """Sends `count` jobs back to back, then waits for every result and checks it."""
    sent = {}
    for i in range(count):
        sent[add.delay(i % 1000, 7)] = i % 1000 + 7
    try:
        if opts.wait == "native":
            values = ResultSet(list(sent)).join_native(timeout=opts.timeout, propagate=True)
            got = dict(zip((r.id for r in sent), values))
        else:
            deadline = time.monotonic() + opts.timeout
            got = {}
            for task_id, meta in app.backend.get_many({r.id for r in sent}, timeout=opts.timeout,
                                                      interval=opts.poll_interval):
                if meta["status"] != "SUCCESS":
                    fail(f"{what}: task {task_id} ended {meta['status']}: {meta.get('result')}")
                got[task_id] = meta["result"]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(sent) - len(got)} results missing")
    except Exception as err:  # celery.exceptions.TimeoutError or the task's own error
        fail(f"{what}: waiting for {count} results after {opts.timeout} s: "
             f"{type(err).__name__}: {err}")
    wrong = sum(1 for r, want in sent.items() if got.get(r.id) != want)
    if wrong:
        fail(f"{what}: {wrong} wrong or missing results of {count}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--wait", choices=("poll", "native"), default="poll")
    parser.add_argument("--poll-interval", type=float, default=0.005)
    opts = parser.parse_args()

    burst(opts.warmup, argparse.Namespace(**{**vars(opts), "wait": "native"}),
          "the warm-up (is the worker running?)")

    trips = []
    for i in range(opts.round_trips):
        t0 = time.perf_counter()
        try:
            value = add.delay(i, 1).get(timeout=opts.timeout)
        except Exception as err:
            fail(f"ping-pong {i}: {type(err).__name__}: {err}")
        trips.append((time.perf_counter() - t0) * 1e3)
        if value != i + 1:
            fail(f"ping-pong {i}: got {value}, expected {i + 1}")
    trips.sort()

    start = time.perf_counter()
    burst(opts.jobs, opts, "the throughput run")
    seconds = time.perf_counter() - start

    print(f"throughput_jobs_per_s={opts.jobs / seconds:.1f}")
    print(f"roundtrip_p50_ms={percentile(trips, 50):.3f}")
    print(f"roundtrip_p99_ms={percentile(trips, 99):.3f}")


if __name__ == "__main__":
    main()
