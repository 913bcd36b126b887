// EXECUTOR_TYPE=process: throughput, round trip, and recovery after a
// worker is killed. Python's ProcessPoolExecutor runs the same workload in
// benchmarks/process_pool_baseline.py; benchmarks/process_benchmarks.sh runs
// both side by side (see docs/performance.md).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "webexec/executor.hpp"
#include "webexec/process/fork_server.hpp"

namespace {

int add(int a, int b) { return a + b; }
WEBEXEC_REGISTER_JOB("bench.add", add);

constexpr int kJobs = 20'000;

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

BENCHMARK(BM_ProcessPool_SubmitResult)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProcessPool_PingPong)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ProcessPool_RecoveryAfterKill)
    ->UseManualTime()
    ->Iterations(50)
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
