// Throughput and latency of ThreadPoolExecutor against boost::asio::thread_pool.
//
// Run with the release preset (see docs/performance.md):
//   build/release/benchmarks/thread_pool_benchmark --benchmark_repetitions=5
// The argument of each benchmark is the number of worker threads; compare a
// webexec row with the Asio row of the same argument from the same run.
#include <malloc.h>

#include <cstdint>
#include <future>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace {

constexpr std::int64_t kTasks = 1'000'000;

// Submit N empty tasks, keep every future, then call result() on each.
void BM_ThreadPool_SubmitResult(benchmark::State& state) {
  webexec::ThreadPoolExecutor pool(static_cast<int>(state.range(0)));
  std::vector<webexec::Future<void>> futures;
  futures.reserve(kTasks);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kTasks; ++i) futures.push_back(pool.submit([] {}));
    for (auto& f : futures) f.result();
    state.PauseTiming();
    futures.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}

void BM_AsioThreadPool_SubmitResult(benchmark::State& state) {
  boost::asio::thread_pool pool(static_cast<std::size_t>(state.range(0)));
  std::vector<std::future<void>> futures;
  futures.reserve(kTasks);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kTasks; ++i) {
      futures.push_back(boost::asio::post(pool, boost::asio::use_future([] {})));
    }
    for (auto& f : futures) f.get();
    state.PauseTiming();
    futures.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
  pool.join();
}

// A request being handled: what the httplib adapter makes current.
class BenchRequest final : public webexec::detail::RequestScope {
 public:
  using RequestScope::RequestScope;

 private:
  [[nodiscard]] std::shared_ptr<const webexec::RequestContext> build_snapshot() const override {
    auto ctx = std::make_shared<webexec::RequestContext>();
    ctx->method = "POST";
    ctx->path = "/jobs";
    ctx->headers = {{"Content-Type", "application/json"}, {"User-Agent", "bench"}};
    ctx->body = R"({"n": 1})";
    ctx->remote_addr = "127.0.0.1";
    ctx->request_id = "bench";
    return ctx;
  }
};

// BM_ThreadPool_SubmitResult through an Executor, inside a request: every
// task captures the app, the request snapshot and a copy of g.
void BM_Executor_SubmitInRequestContext(benchmark::State& state) {
  webexec::App app("bench");
  app.config().set("EXECUTOR_MAX_WORKERS", state.range(0));
  webexec::Executor executor(app);
  BenchRequest request(&app);
  const webexec::detail::ScopedRequest scope(&request);
  webexec::g().set("user", std::string("alice"));
  webexec::g().set("tenant", 42);
  std::vector<webexec::Future<void>> futures;
  futures.reserve(kTasks);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kTasks; ++i) futures.push_back(executor.submit([] {}));
    for (auto& f : futures) f.result();
    state.PauseTiming();
    futures.clear();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}

// Submit one empty task, wait for it, repeat: one round trip per iteration.
void BM_ThreadPool_PingPong(benchmark::State& state) {
  webexec::ThreadPoolExecutor pool(static_cast<int>(state.range(0)));
  for (auto _ : state) pool.submit([] {}).result();
}

void BM_AsioThreadPool_PingPong(benchmark::State& state) {
  boost::asio::thread_pool pool(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) boost::asio::post(pool, boost::asio::use_future([] {})).get();
  pool.join();
}

BENCHMARK(BM_ThreadPool_SubmitResult)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AsioThreadPool_SubmitResult)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Executor_SubmitInRequestContext)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ThreadPool_PingPong)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AsioThreadPool_PingPong)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the process between iterations: otherwise glibc
  // returns the ~80 MB of a million task states to the kernel after each
  // iteration, and the next one measures page faults, by an amount that
  // depends on which benchmark ran before. Applies to every benchmark here.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
