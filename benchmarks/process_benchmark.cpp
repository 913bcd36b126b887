// EXECUTOR_TYPE=process benchmarks (run on the main thread; the pool's
// dispatcher and the worker processes do the rest): throughput of tiny
// jobs, round trip, recovery after a worker is killed, 1 MiB arguments and
// results, and the head-of-line latency of a short job next to a long one.
// Python's ProcessPoolExecutor runs the same workloads in
// benchmarks/process_pool_baseline.py; benchmarks/process_benchmarks.sh runs
// both side by side, alternating (see docs/performance.md).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "webexec/executor.hpp"
#include "webexec/process/fork_server.hpp"

namespace {

int add(int a, int b) { return a + b; }
WEBEXEC_REGISTER_JOB("bench.add", add);

/// Simulated work of `ms` milliseconds.
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
WEBEXEC_REGISTER_JOB("bench.sleep_ms", sleep_ms);

/// Returns its argument: as many bytes back as came in.
std::string echo(std::string bytes) { return bytes; }
WEBEXEC_REGISTER_JOB("bench.echo", echo);

constexpr int kJobs = 20'000;
/// BM_ProcessPool_LargePayload: jobs per iteration and their argument size.
constexpr int kLargeJobs = 32;
constexpr std::size_t kLargeSize = std::size_t{1} << 20U;
/// BM_ProcessPool_HeadOfLine: the long job and the short ones, in ms.
constexpr int kLongMs = 5'000;
constexpr int kShortMs = 10;

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

webexec::App& bench_app(int workers) {
  static webexec::App app("bench");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", workers);
  return app;
}

// Submit kJobs tiny registered jobs, keep every future, then result() each.
void BM_ProcessPool_SubmitResult(benchmark::State& state) {
  webexec::Executor executor(bench_app(static_cast<int>(state.range(0))), "");
  executor.submit(add, 0, 0).result();  // workers started
  std::vector<webexec::Future<int>> futures;
  futures.reserve(kJobs);
  for (auto _ : state) {
    for (int i = 0; i < kJobs; ++i) futures.push_back(executor.submit(add, i, i));
    for (auto& f : futures) benchmark::DoNotOptimize(f.result());
    futures.clear();
  }
  state.SetItemsProcessed(state.iterations() * kJobs);
}

// Submit one tiny job and wait for it: one round trip per iteration.
void BM_ProcessPool_PingPong(benchmark::State& state) {
  webexec::Executor executor(bench_app(1), "");
  executor.submit(add, 0, 0).result();
  for (auto _ : state) benchmark::DoNotOptimize(executor.submit(add, 1, 2).result());
}

// Kill the (idle) worker with SIGKILL, then time until the next job has run
// on its replacement: detection, reaping, a fork and the job itself.
void BM_ProcessPool_RecoveryAfterKill(benchmark::State& state) {
  webexec::Executor executor(bench_app(1), "");
  executor.submit(add, 0, 0).result();
  for (auto _ : state) {
    const auto pids = executor.worker_pids();
    if (pids.empty()) {
      state.SkipWithError("no worker process");
      break;
    }
    const auto start = std::chrono::steady_clock::now();
    ::kill(pids.front(), SIGKILL);
    benchmark::DoNotOptimize(executor.submit(add, 1, 2).result());
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

// kLargeJobs jobs with 1 MiB arguments of arbitrary bytes (every value, NUL
// and non-UTF-8 included) on 2 workers, submitted at once; each returns its
// argument. Bytes processed = arguments + results (2 MiB a job), the same
// count as process_pool_baseline.py's `large_payload`.
void BM_ProcessPool_LargePayload(benchmark::State& state) {
  webexec::Executor executor(bench_app(2), "");
  std::string bytes(kLargeSize, '\0');
  std::mt19937 random(42);  // NOLINT(cert-msc32-c,cert-msc51-cpp): fixed on purpose
  for (char& c : bytes) c = static_cast<char>(random() & 0xFFU);
  // Both workers started, one round of the workload done.
  std::vector<webexec::Future<std::string>> futures;
  futures.reserve(kLargeJobs);
  for (int i = 0; i < 2; ++i) futures.push_back(executor.submit(echo, bytes));
  for (auto& f : futures) {
    if (f.result() != bytes) state.SkipWithError("the result differs from the argument");
  }
  futures.clear();
  for (auto _ : state) {
    for (int i = 0; i < kLargeJobs; ++i) futures.push_back(executor.submit(echo, bytes));
    for (auto& f : futures) benchmark::DoNotOptimize(f.result());
    futures.clear();
  }
  state.SetBytesProcessed(state.iterations() * kLargeJobs * 2 *
                          static_cast<std::int64_t>(kLargeSize));
}

// One worker runs a kLongMs job; then state.range(0) jobs of kShortMs are
// submitted at once, and each one's latency (submit to result) is taken.
// The iteration time is the median of those latencies; the worst is the
// counter `worst_ms`. Ideal, with the other worker free: kShortMs plus a
// round trip for one short job, about n * kShortMs / 2 for n of them (they
// run one after another on the free worker).
void BM_ProcessPool_HeadOfLine(benchmark::State& state) {
  const auto shorts = static_cast<std::size_t>(state.range(0));
  webexec::Executor executor(bench_app(2), "");
  {  // both workers started
    auto a = executor.submit(sleep_ms, 1);
    auto b = executor.submit(sleep_ms, 1);
    a.result();
    b.result();
  }
  double worst = 0.0;
  for (auto _ : state) {
    auto long_job = executor.submit(sleep_ms, kLongMs);
    // Wait (bounded) until a worker has started it.
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    while (!long_job.running() && !long_job.done() && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!long_job.running()) {
      state.SkipWithError("the long job did not start within 10 s");
      break;
    }
    std::vector<webexec::Future<int>> futures;
    std::vector<Clock::time_point> submitted;
    for (std::size_t i = 0; i < shorts; ++i) {
      submitted.push_back(Clock::now());
      futures.push_back(executor.submit(sleep_ms, kShortMs));
    }
    // Each one's completion time, taken by a done callback (the
    // dispatcher thread, or this one if already done); the latch says all
    // are written.
    std::vector<double> latencies(shorts, 0.0);
    std::latch all_done(static_cast<std::ptrdiff_t>(shorts));
    for (std::size_t i = 0; i < shorts; ++i) {
      futures[i].add_done_callback(
          [&latencies, &all_done, i, start = submitted[i]](const webexec::Future<int>& /*f*/) {
            latencies[i] = ms_since(start);
            all_done.count_down();
          });
    }
    all_done.wait();
    std::sort(latencies.begin(), latencies.end());
    const double median =
        latencies.size() % 2 == 1
            ? latencies[latencies.size() / 2]
            : (latencies[latencies.size() / 2 - 1] + latencies[latencies.size() / 2]) / 2;
    worst = std::max(worst, latencies.back());
    state.SetIterationTime(median / 1000.0);
    long_job.wait();  // the next iteration starts with both workers free
  }
  state.counters["worst_ms"] = worst;
}

BENCHMARK(BM_ProcessPool_SubmitResult)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProcessPool_PingPong)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ProcessPool_RecoveryAfterKill)
    ->UseManualTime()
    ->Iterations(50)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProcessPool_LargePayload)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProcessPool_HeadOfLine)
    ->Arg(1)
    ->Arg(8)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();  // before any thread
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
