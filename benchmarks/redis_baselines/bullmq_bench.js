// BullMQ side of benchmarks/redis_benchmarks.sh (see that script's header).
//
//   node bullmq_bench.js worker   --redis-url redis://127.0.0.1:PORT/0 [--concurrency 2]
//   node bullmq_bench.js producer --redis-url redis://127.0.0.1:PORT/0 \
//        [--jobs 20000] [--round-trips 500] [--warmup 500] [--timeout 120]
//
// The worker is one Node process running a BullMQ Worker with `concurrency` job
// slots (BullMQ runs them as concurrent async jobs on one event loop). The job adds
// two small ints. The producer warms up (which also waits until the worker is
// consuming, so its start-up is not timed), then, in the same order as the Celery
// driver:
//   ping-pong   `round-trips` times: add() one job, await job.waitUntilFinished()
//               (the QueueEvents listener below), then the next; p50 and p99 of the trips.
//   throughput  `jobs` calls of queue.add(), issued back to back without awaiting
//               each one (ioredis pipelines them on the producer's connection);
//               the clock runs from the first add() to the last `completed`
//               event seen by a QueueEvents listener (one XREAD stream for all
//               jobs, the fastest way BullMQ offers a producer to observe
//               completion), and every returnvalue is checked.
// It prints the output contract of redis_benchmarks.sh:
//   throughput_jobs_per_s=<x>  roundtrip_p50_ms=<y>  roundtrip_p99_ms=<z>
// and exits non-zero, naming what it waited for, if anything takes longer than
// --timeout seconds or a result is wrong.
'use strict';

const { Queue, Worker, QueueEvents } = require('bullmq');

const QUEUE = 'webexec-bench';

function parseArgs(argv) {
  const opts = {
    mode: argv[0],
    redisUrl: '',
    concurrency: 2,
    jobs: 20000,
    roundTrips: 500,
    warmup: 500,
    timeout: 120,
  };
  const numeric = { '--concurrency': 'concurrency', '--jobs': 'jobs',
    '--round-trips': 'roundTrips', '--warmup': 'warmup', '--timeout': 'timeout' };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i];
    const value = argv[i + 1];
    if (value === undefined) fail(`${key} needs a value`);
    if (key === '--redis-url') {
      opts.redisUrl = value;
    } else if (key in numeric) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) fail(`${key}=${value} is not a non-negative integer`);
      opts[numeric[key]] = n;
    } else {
      fail(`unknown option ${key}`);
    }
  }
  if (opts.mode !== 'worker' && opts.mode !== 'producer') fail('usage: bullmq_bench.js worker|producer ...');
  if (!opts.redisUrl) fail('--redis-url is required');
  return opts;
}

function fail(message) {
  console.error(`bullmq_bench: error: ${message}`);
  process.exit(1);
}

function connectionOf(url) {
  const u = new URL(url);
  if (u.protocol !== 'redis:') fail(`--redis-url ${url}: only redis://host:port/db`);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

// Rejects with a clear message if `promise` does not settle within `seconds`.
function within(seconds, what, promise) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${seconds} s waiting for ${what}`)),
      seconds * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function percentile(sorted, p) {
  // Nearest rank.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

async function runWorker(opts) {
  const worker = new Worker(QUEUE, async (job) => job.data.a + job.data.b, {
    connection: connectionOf(opts.redisUrl),
    concurrency: opts.concurrency,
  });
  worker.on('error', (err) => console.error(`bullmq_bench worker: ${err.message}`));
  await worker.waitUntilReady();
  const stop = async () => {
    await within(10, 'the worker to close', worker.close()).catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function runProducer(opts) {
  const connection = connectionOf(opts.redisUrl);
  // The events stream is trimmed to maxLen (10,000 by default); a throughput run writes
  // several events per job, so a lagging listener could lose `completed` events and
  // hang. Keep them all for the run.
  const queue = new Queue(QUEUE, {
    connection,
    streams: { events: { maxLen: 10 * (opts.jobs + opts.warmup + opts.roundTrips) + 1000 } },
  });
  // Read the events stream from its start: redis is flushed before each system, so it
  // holds only this run's events, and none is lost to the gap between ready and the
  // listener's first XREAD (reading from '$', the default, lost some at start-up).
  const events = new QueueEvents(QUEUE, { connection, lastEventId: '0-0' });
  await within(opts.timeout, 'the queue and the QueueEvents connection',
    Promise.all([queue.waitUntilReady(), events.waitUntilReady()]));

  // Completion bookkeeping shared by the warm-up and the throughput run. Ids are
  // assigned by redis (INCR) when add() runs, and a `completed` event can be read
  // before add()'s promise resolves, so outcomes of ids not known yet wait in `early`.
  let expected = new Map();  // jobId -> a + b, for added jobs whose outcome is not seen
  let early = new Map();     // jobId -> outcome (a value, or an Error) seen before add() resolved
  let remaining = 0;
  let wrong = 0;
  let allDone = () => {};
  const settle = (jobId, outcome) => {
    if (outcome instanceof Error || outcome !== expected.get(jobId)) {
      if (outcome instanceof Error) console.error(`bullmq_bench: job ${jobId} failed: ${outcome.message}`);
      wrong += 1;
    }
    expected.delete(jobId);
    remaining -= 1;
    if (remaining === 0) allDone();
  };
  const outcome = (jobId, value) => {
    if (expected.has(jobId)) settle(jobId, value);
    else if (remaining > 0) early.set(jobId, value);
  };
  events.on('completed', ({ jobId, returnvalue }) =>
    outcome(jobId, typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue));
  events.on('failed', ({ jobId, failedReason }) => outcome(jobId, new Error(failedReason)));

  // Enqueues `count` jobs back to back; resolves when every result has been seen.
  const burst = async (count, what) => {
    expected = new Map();
    early = new Map();
    remaining = count;
    const done = new Promise((resolve) => { allDone = resolve; });
    const adds = new Array(count);
    for (let i = 0; i < count; ++i) {
      const a = i % 1000;
      const b = 7;
      adds[i] = queue.add('add', { a, b }).then((job) => {
        expected.set(job.id, a + b);
        if (early.has(job.id)) {
          const value = early.get(job.id);
          early.delete(job.id);
          settle(job.id, value);
        }
      });
    }
    await within(opts.timeout, `${what}: ${count} add() calls`, Promise.all(adds));
    await within(opts.timeout, `${what}: ${count} completed events`, done)
      .catch((err) => { throw new Error(`${err.message} (${remaining} missing)`); });
  };

  await burst(opts.warmup, 'the warm-up (is the worker running?)');
  if (wrong > 0) fail(`${wrong} wrong or failed results in the warm-up`);

  const trips = [];
  for (let i = 0; i < opts.roundTrips; ++i) {
    const start = process.hrtime.bigint();
    const job = await within(opts.timeout, `ping-pong ${i}: add()`, queue.add('add', { a: i, b: 1 }));
    const value = await within(opts.timeout, `ping-pong ${i}: its result`,
      job.waitUntilFinished(events, opts.timeout * 1000));
    trips.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (value !== i + 1) fail(`ping-pong ${i}: got ${value}, expected ${i + 1}`);
  }
  trips.sort((x, y) => x - y);

  const t0 = process.hrtime.bigint();
  await burst(opts.jobs, 'the throughput run');
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (wrong > 0) fail(`${wrong} wrong or failed results in the throughput run`);

  console.log(`throughput_jobs_per_s=${(opts.jobs / seconds).toFixed(1)}`);
  console.log(`roundtrip_p50_ms=${percentile(trips, 50).toFixed(3)}`);
  console.log(`roundtrip_p99_ms=${percentile(trips, 99).toFixed(3)}`);
  await Promise.all([queue.close(), events.close()]);
}

const opts = parseArgs(process.argv.slice(2));
(opts.mode === 'worker' ? runWorker(opts) : runProducer(opts)).catch((err) => fail(err.message));
