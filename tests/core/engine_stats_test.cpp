// EngineStats of the thread engine (Executor::stats(), ThreadPoolExecutor::stats()):
// submitted, queued, running and finished by state, checked at points that
// latches make exact. Each thread counts in its own slot; these tests use
// several submitting threads and pools so the summing and the per-thread
// caches are exercised too.
#include "webexec/engine_stats.hpp"

#include <chrono>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace {

using namespace std::chrono_literals;

/// A task that signals it started, then waits for `release`.
struct Blocker {
  std::latch started{1};
  std::latch release{1};
  void run() {
    started.count_down();
    release.wait();
  }
};

TEST(EngineStatsTest, ThreadPoolCountsEveryStateExactly) {
  webexec::ThreadPoolExecutor pool(1);
  EXPECT_EQ(pool.stats().submitted, 0U);

  Blocker blocker;
  auto running = pool.submit([&] { blocker.run(); });
  blocker.started.wait();
  auto queued_ok = pool.submit([] { return 1; });
  auto queued_fail = pool.submit([]() -> int { throw std::runtime_error("boom"); });
  auto queued_cancel = pool.submit([] { return 3; });
  ASSERT_TRUE(queued_cancel.cancel());

  webexec::EngineStats s = pool.stats();
  EXPECT_EQ(s.submitted, 4U);
  EXPECT_EQ(s.running, 1U);
  // A cancelled task stays queued until the worker takes it off the queue.
  EXPECT_EQ(s.queued, 3U);
  EXPECT_EQ(s.succeeded, 0U);
  EXPECT_EQ(s.failed, 0U);
  EXPECT_EQ(s.cancelled, 0U);

  blocker.release.count_down();
  running.result();
  EXPECT_EQ(queued_ok.result(), 1);
  EXPECT_THROW(queued_fail.result(), std::runtime_error);
  pool.shutdown(/*wait=*/true);  // the worker has taken the cancelled one off

  s = pool.stats();
  EXPECT_EQ(s.submitted, 4U);
  EXPECT_EQ(s.running, 0U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(s.succeeded, 2U);
  EXPECT_EQ(s.failed, 1U);
  EXPECT_EQ(s.cancelled, 1U);
  EXPECT_EQ(s.restarts, 0U);
  EXPECT_EQ(s.redeliveries, 0U);
  EXPECT_EQ(s.dead_lettered, 0U);
}

TEST(EngineStatsTest, ShutdownWithCancelFuturesCountsTheDroppedTasks) {
  webexec::ThreadPoolExecutor pool(1);
  Blocker blocker;
  auto running = pool.submit([&] { blocker.run(); });
  blocker.started.wait();
  std::vector<webexec::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit([i] { return i; }));
  pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  webexec::EngineStats s = pool.stats();
  EXPECT_EQ(s.cancelled, 5U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(s.running, 1U);
  blocker.release.count_down();
  pool.shutdown(/*wait=*/true);
  s = pool.stats();
  EXPECT_EQ(s.submitted, 6U);
  EXPECT_EQ(s.succeeded, 1U);
  EXPECT_EQ(s.running, 0U);
}

TEST(EngineStatsTest, SubmitsFromManyThreadsAndPoolsAreAllCounted) {
  // Each thread alternates between more pools than its cache of recent
  // pools holds, so the registry's lookup by thread is used as well.
  constexpr int kPools = 11;
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  std::vector<std::unique_ptr<webexec::ThreadPoolExecutor>> pools;
  for (int p = 0; p < kPools; ++p)
    pools.push_back(std::make_unique<webexec::ThreadPoolExecutor>(2));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        for (auto& pool : pools) static_cast<void>(pool->submit([] { return 0; }));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& pool : pools) {
    pool->shutdown(/*wait=*/true);
    const webexec::EngineStats s = pool->stats();
    EXPECT_EQ(s.submitted, std::uint64_t{kThreads} * kRounds);
    EXPECT_EQ(s.succeeded, std::uint64_t{kThreads} * kRounds);
    EXPECT_EQ(s.queued + s.running + s.failed + s.cancelled, 0U);
  }
}

TEST(EngineStatsTest, ASubmitAfterShutdownIsNotCounted) {
  webexec::ThreadPoolExecutor pool(1);
  pool.shutdown();
  EXPECT_THROW(static_cast<void>(pool.submit([] {})), webexec::ShutdownError);
  EXPECT_EQ(pool.stats().submitted, 0U);
}

TEST(EngineStatsTest, ATaskRunInlineByAWaitingWorkerIsCountedOnce) {
  // One worker waits on a task of its own pool that is still queued: it
  // runs it inline, and the queue entry is skipped later.
  webexec::ThreadPoolExecutor pool(1);
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return 7; });
    return inner.result() + 1;
  });
  EXPECT_EQ(outer.result(), 8);
  pool.shutdown(/*wait=*/true);
  const webexec::EngineStats s = pool.stats();
  EXPECT_EQ(s.submitted, 2U);
  EXPECT_EQ(s.succeeded, 2U);
  EXPECT_EQ(s.queued + s.running + s.failed + s.cancelled, 0U);
}

TEST(EngineStatsTest, ExecutorReportsItsEngineCounters) {
  webexec::Executor unbound;
  EXPECT_THROW(static_cast<void>(unbound.stats()), webexec::InvalidStateError);

  webexec::App app("stats");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  Blocker blocker;
  auto running = executor.submit([&] { blocker.run(); });
  blocker.started.wait();
  auto stored = executor.submit_stored("k", [] { return 2; });
  auto fails = executor.submit([]() -> int { throw std::runtime_error("no"); });
  webexec::EngineStats s = executor.stats();
  EXPECT_EQ(s.submitted, 3U);
  EXPECT_EQ(s.running, 1U);
  EXPECT_EQ(s.queued, 2U);
  blocker.release.count_down();
  EXPECT_EQ(stored.result(), 2);
  EXPECT_THROW(fails.result(), std::runtime_error);
  executor.shutdown(/*wait=*/true);
  s = executor.stats();
  EXPECT_EQ(s.succeeded, 2U);
  EXPECT_EQ(s.failed, 1U);
  EXPECT_EQ(s.queued + s.running + s.cancelled, 0U);
}

}  // namespace
