// webexec::wait: the semantics of CPython's
// Lib/test/test_concurrent_futures/test_wait.py, for threads. One deliberate
// difference: a cancelled future is done at once, so futures cancelled by
// shutdown(cancel_futures=true) count as done (CPython bug gh-87893).
#include "webexec/wait.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/thread_pool_executor.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec::ReturnWhen;
using webexec_test::core::Gate;
using webexec_test::core::submit_blocker;
using webexec_test::core::TestError;

/// Futures in every state, plus a second pending one, backed by promises that
/// live as long as this.
struct Fixtures : webexec_test::core::StateFixtures {
  webexec::Promise<int> pending_promise2;
  webexec::Future<int> pending2 = pending_promise2.future();
};

using Futures = std::vector<webexec::AnyFuture>;

// --- FIRST_COMPLETED ------------------------------------------------------------------

TEST(WaitTest, FirstCompletedReturnsWhenOneCompletes) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    fx.pending_promise.set_result(1);
  });
  waiting.count_down();
  auto [done, not_done] = webexec::wait({fx.pending, fx.pending2}, {}, ReturnWhen::first_completed);
  producer.join();
  ASSERT_EQ(done.size(), 1U);
  EXPECT_EQ(webexec::AnyFuture(done[0]), webexec::AnyFuture(fx.pending));
  ASSERT_EQ(not_done.size(), 1U);
  EXPECT_EQ(webexec::AnyFuture(not_done[0]), webexec::AnyFuture(fx.pending2));
}

TEST(WaitTest, FirstCompletedWithSomeAlreadyDoneReturnsAtOnce) {
  Fixtures fx;
  // CPython counts a plain CANCELLED future as not done here; webexec
  // completes a cancelled future at once, so it is done.
  auto [done, not_done] =
      webexec::wait(Futures{fx.pending, fx.cancelled, fx.running, fx.successful, fx.failed}, {},
                    ReturnWhen::first_completed);
  EXPECT_EQ(done, (Futures{fx.cancelled, fx.successful, fx.failed}));
  EXPECT_EQ(not_done, (Futures{fx.pending, fx.running}));
}

TEST(WaitTest, FirstCompletedWithNothingDoneTimesOut) {
  Fixtures fx;
  auto [done, not_done] =
      webexec::wait({fx.pending, fx.running}, 50ms, ReturnWhen::first_completed);
  EXPECT_TRUE(done.empty());
  EXPECT_EQ(not_done.size(), 2U);
}

TEST(WaitTest, FirstCompletedWokenByCancel) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread canceller([&] {
    waiting.wait();
    EXPECT_TRUE(fx.pending2.cancel());
  });
  waiting.count_down();
  auto [done, not_done] = webexec::wait({fx.pending, fx.pending2}, {}, ReturnWhen::first_completed);
  canceller.join();
  ASSERT_EQ(done.size(), 1U);
  EXPECT_TRUE(done[0].cancelled());
  EXPECT_EQ(not_done.size(), 1U);
}

// --- FIRST_EXCEPTION -------------------------------------------------------------------

TEST(WaitTest, FirstExceptionWaitsPastSuccessesUntilAFailure) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    fx.pending_promise.set_result(1);  // a success does not end the wait
    fx.running_promise.set_exception(std::make_exception_ptr(TestError("late failure")));
  });
  waiting.count_down();
  auto [done, not_done] =
      webexec::wait({fx.pending, fx.running, fx.pending2}, {}, ReturnWhen::first_exception);
  producer.join();
  EXPECT_EQ(Futures(done.begin(), done.end()), (Futures{fx.pending, fx.running}));
  EXPECT_EQ(Futures(not_done.begin(), not_done.end()), (Futures{fx.pending2}));
}

TEST(WaitTest, FirstExceptionWithSomeAlreadyCompletedKeepsWaiting) {
  Fixtures fx;
  // A success and a cancel are done, but neither is an exception.
  auto [done, not_done] = webexec::wait(Futures{fx.successful, fx.cancelled, fx.pending}, 50ms,
                                        ReturnWhen::first_exception);
  EXPECT_EQ(done, (Futures{fx.successful, fx.cancelled}));
  EXPECT_EQ(not_done, (Futures{fx.pending}));
}

TEST(WaitTest, FirstExceptionWithOneAlreadyFailedReturnsAtOnce) {
  Fixtures fx;
  auto [done, not_done] =
      webexec::wait(Futures{fx.successful, fx.failed, fx.pending}, {}, ReturnWhen::first_exception);
  EXPECT_EQ(done, (Futures{fx.successful, fx.failed}));
  EXPECT_EQ(not_done, (Futures{fx.pending}));
}

TEST(WaitTest, FirstExceptionReturnsWhenAllCompleteWithoutFailure) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    fx.pending_promise.set_result(1);
    fx.pending_promise2.set_result(2);
  });
  waiting.count_down();
  auto [done, not_done] =
      webexec::wait({fx.pending, fx.pending2, fx.successful}, {}, ReturnWhen::first_exception);
  producer.join();
  EXPECT_EQ(done.size(), 3U);
  EXPECT_TRUE(not_done.empty());
}

TEST(WaitTest, FirstExceptionFromPoolTask) {
  webexec::ThreadPoolExecutor pool(2);
  Gate gate;
  auto blocked = pool.submit([w = gate.waiter()] {
    w.wait();
    return 1;
  });
  auto failing = pool.submit([]() -> int { throw TestError("task failed"); });
  auto [done, not_done] = webexec::wait({blocked, failing}, {}, ReturnWhen::first_exception);
  ASSERT_EQ(done.size(), 1U);
  EXPECT_EQ(webexec::AnyFuture(done[0]), webexec::AnyFuture(failing));
  ASSERT_EQ(not_done.size(), 1U);
  EXPECT_EQ(webexec::AnyFuture(not_done[0]), webexec::AnyFuture(blocked));
  gate.open();
  EXPECT_EQ(blocked.result(), 1);
}

// --- ALL_COMPLETED ---------------------------------------------------------------------

TEST(WaitTest, AllCompletedWithMixedStates) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    fx.pending_promise.set_exception(std::make_exception_ptr(TestError("x")));
    fx.running_promise.set_result(3);
  });
  waiting.count_down();
  auto [done, not_done] =
      webexec::wait(Futures{fx.successful, fx.failed, fx.cancelled, fx.pending, fx.running});
  producer.join();
  EXPECT_EQ(done, (Futures{fx.successful, fx.failed, fx.cancelled, fx.pending, fx.running}));
  EXPECT_TRUE(not_done.empty());
}

TEST(WaitTest, AllCompletedIsTheDefault) {
  Fixtures fx;
  auto [done, not_done] = webexec::wait(Futures{fx.successful, fx.pending}, 50ms);
  EXPECT_EQ(done, (Futures{fx.successful}));
  EXPECT_EQ(not_done, (Futures{fx.pending}));
}

TEST(WaitTest, TimeoutReturnsThePartitionInInputOrder) {
  Fixtures fx;
  auto [done, not_done] = webexec::wait(
      Futures{fx.pending, fx.failed, fx.running, fx.cancelled, fx.successful, fx.pending2}, 50ms,
      ReturnWhen::all_completed);
  EXPECT_EQ(done, (Futures{fx.failed, fx.cancelled, fx.successful}));
  EXPECT_EQ(not_done, (Futures{fx.pending, fx.running, fx.pending2}));
}

TEST(WaitTest, ZeroTimeoutDoesNotBlock) {
  Fixtures fx;
  auto [done, not_done] = webexec::wait({fx.pending, fx.successful}, 0ms);
  EXPECT_EQ(done.size(), 1U);
  EXPECT_EQ(not_done.size(), 1U);
}

TEST(WaitTest, EmptyInputReturnsAtOnce) {
  const std::vector<webexec::Future<int>> none;
  auto [done, not_done] = webexec::wait(none);
  EXPECT_TRUE(done.empty());
  EXPECT_TRUE(not_done.empty());
}

TEST(WaitTest, EmptyHandleThrowsInvalidStateError) {
  Fixtures fx;
  const std::vector<webexec::Future<int>> fs{fx.successful, webexec::Future<int>{}};
  EXPECT_THROW(static_cast<void>(webexec::wait(fs)), webexec::InvalidStateError);
}

TEST(WaitTest, DuplicatesAreCountedOnce) {
  Fixtures fx;
  auto [done, not_done] = webexec::wait(
      {fx.successful, fx.successful, fx.failed, fx.pending, fx.pending, fx.successful}, 0ms);
  EXPECT_EQ(Futures(done.begin(), done.end()), (Futures{fx.successful, fx.failed}));
  EXPECT_EQ(Futures(not_done.begin(), not_done.end()), (Futures{fx.pending}));

  // A duplicate must not satisfy ALL_COMPLETED twice over: with the second
  // distinct future still pending the wait has to time out.
  auto [done2, not_done2] = webexec::wait({fx.successful, fx.successful, fx.pending}, 50ms);
  EXPECT_EQ(done2.size(), 1U);
  EXPECT_EQ(not_done2.size(), 1U);
}

TEST(WaitTest, DuplicatesThroughDifferentHandleTypesAreCountedOnce) {
  Fixtures fx;
  const webexec::AnyFuture copy = fx.successful;
  auto [done, not_done] = webexec::wait(Futures{fx.successful, copy, fx.pending}, 0ms);
  EXPECT_EQ(done.size(), 1U);
  EXPECT_EQ(not_done.size(), 1U);
}

TEST(WaitTest, MixedResultTypesThroughAnyFuture) {
  webexec::Promise<int> ints;
  webexec::Promise<std::string> strings;
  webexec::Promise<void> voids;
  const Futures fs{ints.future(), strings.future(), voids.future()};
  ints.set_result(1);
  strings.set_result("two");
  voids.set_result();
  auto [done, not_done] = webexec::wait(fs);
  EXPECT_EQ(done, fs);
  EXPECT_EQ(done[1].result<std::string>(), "two");
}

// --- races -------------------------------------------------------------------------------

TEST(WaitTest, HundredPoolTasksReleasedAtOnce) {
  std::latch release(1);
  webexec::ThreadPoolExecutor pool(8);
  std::vector<webexec::Future<int>> fs;
  fs.reserve(100);
  for (int i = 0; i < 100; ++i) {
    fs.push_back(pool.submit([&release, i] {
      release.wait();
      return i;
    }));
  }
  release.count_down();
  auto [done, not_done] = webexec::wait(fs, {}, ReturnWhen::all_completed);
  EXPECT_TRUE(not_done.empty());
  ASSERT_EQ(done.size(), 100U);
  for (std::size_t i = 0; i < done.size(); ++i) {
    EXPECT_EQ(done[i].result(0ms), static_cast<int>(i));
  }
}

TEST(WaitTest, HundredPromisesCompletedConcurrentlyWithTheWait) {
  constexpr int count = 100;
  constexpr int producer_count = 4;
  std::vector<webexec::Promise<int>> promises(count);
  std::vector<webexec::Future<int>> fs;
  fs.reserve(promises.size());
  for (auto& p : promises) fs.push_back(p.future());
  std::latch go(producer_count + 1);
  std::vector<std::thread> producers;
  producers.reserve(producer_count);
  for (int t = 0; t < producer_count; ++t) {
    producers.emplace_back([&, t] {
      go.arrive_and_wait();
      for (int i = t; i < count; i += producer_count) {
        promises[static_cast<std::size_t>(i)].set_result(i);
      }
    });
  }
  go.arrive_and_wait();
  auto [done, not_done] = webexec::wait(fs);
  for (auto& t : producers) t.join();
  EXPECT_EQ(done.size(), static_cast<std::size_t>(count));
  EXPECT_TRUE(not_done.empty());
}

TEST(WaitTest, FirstCompletedRaceReturnsSomethingDone) {
  constexpr int count = 50;
  std::vector<webexec::Promise<int>> promises(count);
  std::vector<webexec::Future<int>> fs;
  fs.reserve(promises.size());
  for (auto& p : promises) fs.push_back(p.future());
  std::latch go(2);
  std::thread producer([&] {
    go.arrive_and_wait();
    for (int i = count - 1; i >= 0; --i) promises[static_cast<std::size_t>(i)].set_result(i);
  });
  go.arrive_and_wait();
  auto [done, not_done] = webexec::wait(fs, {}, ReturnWhen::first_completed);
  EXPECT_FALSE(done.empty());
  EXPECT_EQ(done.size() + not_done.size(), static_cast<std::size_t>(count));
  for (const auto& f : done) EXPECT_TRUE(f.done());
  producer.join();
}

// --- cancelled futures, including by shutdown (gh-87893) -------------------------------

TEST(WaitTest, CancelledFuturesCountAsDone) {
  Fixtures fx;
  ASSERT_TRUE(fx.pending.cancel());
  auto [done, not_done] = webexec::wait({fx.pending, fx.cancelled}, {}, ReturnWhen::all_completed);
  EXPECT_EQ(done.size(), 2U);
  EXPECT_TRUE(not_done.empty());
}

TEST(WaitTest, FuturesCancelledByShutdownCountAsDone) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto running = submit_blocker(pool, gate, -1);
  std::vector<webexec::Future<int>> queued;
  queued.reserve(3);
  for (int i = 0; i < 3; ++i) queued.push_back(pool.submit([i] { return i; }));

  // The cancelling shutdown runs on another thread while this one blocks in
  // wait() without a timeout: in CPython (gh-87893) this wait never returns.
  std::latch waiting(1);
  std::thread stopper([&] {
    waiting.wait();
    pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  });
  waiting.count_down();
  auto [done, not_done] = webexec::wait(queued, {}, ReturnWhen::all_completed);
  stopper.join();
  EXPECT_TRUE(not_done.empty());
  ASSERT_EQ(done.size(), 3U);
  for (const auto& f : done) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());

  gate.open();
  EXPECT_EQ(running.result(), -1);
}

TEST(WaitTest, FirstCompletedWokenByShutdownCancel) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto running = submit_blocker(pool, gate);
  auto queued = pool.submit([] {});
  std::latch waiting(1);
  std::thread stopper([&] {
    waiting.wait();
    pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  });
  waiting.count_down();
  auto [done, not_done] = webexec::wait({running, queued}, {}, ReturnWhen::first_completed);
  stopper.join();
  ASSERT_EQ(done.size(), 1U);
  EXPECT_TRUE(done[0].cancelled());
  EXPECT_EQ(webexec::AnyFuture(done[0]), webexec::AnyFuture(queued));
  EXPECT_EQ(not_done.size(), 1U);
  gate.open();
  running.result();
}

}  // namespace
