// webexec::as_completed: the semantics of CPython's
// Lib/test/test_concurrent_futures/test_as_completed.py, for threads, plus
// futures cancelled by shutdown(cancel_futures=true), which webexec yields
// (CPython bug gh-87893).
#include "webexec/wait.hpp"  // the header under test (as_completed) comes first
// Then the rest, grouped as usual.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <future>
#include <latch>
#include <list>
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
using webexec_test::core::Gate;
using webexec_test::core::submit_blocker;
using webexec_test::core::TestError;
using Fixtures = webexec_test::core::StateFixtures;

using Futures = std::vector<webexec::AnyFuture>;

/// Iterates `range` to the end and returns what it yielded, as AnyFutures.
template <typename Range>
Futures drain(Range&& range) {
  Futures out;
  for (const auto& f : range) out.emplace_back(f);
  return out;
}

TEST(AsCompletedTest, NoTimeoutOverMixedStates) {
  Fixtures fx;
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    fx.running_promise.set_result(7);
    fx.pending_promise.set_exception(std::make_exception_ptr(TestError("late")));
  });
  auto completed = webexec::as_completed(
      Futures{fx.pending, fx.successful, fx.running, fx.cancelled, fx.failed});
  waiting.count_down();
  const Futures yielded = drain(completed);
  producer.join();
  // Those already done come first, in input order; then completion order.
  EXPECT_EQ(yielded, (Futures{fx.successful, fx.cancelled, fx.failed, fx.running, fx.pending}));
}

TEST(AsCompletedTest, AlreadyDoneFirstThenCompletionOrder) {
  webexec::Promise<int> a;
  webexec::Promise<int> b;
  webexec::Promise<int> c;
  webexec::Promise<int> d;
  const std::vector<webexec::Future<int>> fs{a.future(), b.future(), c.future(), d.future()};
  d.set_result(4);
  b.set_result(2);
  auto completed = webexec::as_completed(fs);
  c.set_result(3);
  a.set_result(1);
  std::vector<int> order;
  for (const auto& f : completed) order.push_back(f.result());
  EXPECT_EQ(order, (std::vector<int>{2, 4, 3, 1}));
}

TEST(AsCompletedTest, YieldsEachCompletionAsItHappens) {
  webexec::Promise<int> a;
  webexec::Promise<int> b;
  webexec::Promise<int> c;
  const std::vector<webexec::Future<int>> fs{a.future(), b.future(), c.future()};
  auto completed = webexec::as_completed(fs);
  b.set_result(2);
  auto it = completed.begin();
  ASSERT_FALSE(it == completed.end());
  EXPECT_EQ(it->result(), 2);
  c.set_result(3);
  ++it;
  ASSERT_FALSE(it == completed.end());
  EXPECT_EQ(it->result(), 3);
  a.set_result(1);
  ++it;
  ASSERT_FALSE(it == completed.end());
  EXPECT_EQ(it->result(), 1);
  ++it;
  EXPECT_TRUE(it == completed.end());
}

TEST(AsCompletedTest, BlocksUntilAnotherThreadCompletes) {
  webexec::Promise<std::string> promise;
  const std::vector<webexec::Future<std::string>> fs{promise.future()};
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    promise.set_result("arrived");
  });
  std::vector<std::string> seen;
  auto completed = webexec::as_completed(fs);
  waiting.count_down();
  for (const auto& f : completed) seen.push_back(f.result());
  producer.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"arrived"}));
}

TEST(AsCompletedTest, ZeroTimeoutYieldsDoneOnesThenThrows) {
  Fixtures fx;
  Futures yielded;
  try {
    for (const auto& f :
         webexec::as_completed(Futures{fx.pending, fx.successful, fx.running, fx.failed}, 0ms)) {
      yielded.push_back(f);
    }
    ADD_FAILURE() << "as_completed did not time out";
  } catch (const webexec::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "2 (of 4) futures unfinished");
  }
  EXPECT_EQ(yielded, (Futures{fx.successful, fx.failed}));
}

TEST(AsCompletedTest, ShortTimeoutYieldsDoneOnesThenThrows) {
  Fixtures fx;
  Futures yielded;
  try {
    for (const auto& f :
         webexec::as_completed(Futures{fx.cancelled, fx.pending, fx.running}, 50ms)) {
      yielded.push_back(f);
    }
    ADD_FAILURE() << "as_completed did not time out";
  } catch (const webexec::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "2 (of 3) futures unfinished");
  }
  EXPECT_EQ(yielded, (Futures{fx.cancelled}));
}

TEST(AsCompletedTest, TimeoutWithNothingDoneThrowsFromBegin) {
  Fixtures fx;
  auto completed = webexec::as_completed({fx.pending, fx.running}, 0ms);
  try {
    static_cast<void>(completed.begin());
    ADD_FAILURE() << "begin() did not time out";
  } catch (const webexec::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "2 (of 2) futures unfinished");
  }
}

TEST(AsCompletedTest, TimeoutIsNotReachedWhenAllAreDone) {
  Fixtures fx;
  EXPECT_EQ(drain(webexec::as_completed(Futures{fx.successful, fx.failed, fx.cancelled}, 0ms)),
            (Futures{fx.successful, fx.failed, fx.cancelled}));
}

TEST(AsCompletedTest, DuplicatesAreYieldedOnce) {
  Fixtures fx;
  EXPECT_EQ(drain(webexec::as_completed(
                Futures{fx.successful, fx.successful, fx.failed, fx.successful, fx.failed})),
            (Futures{fx.successful, fx.failed}));
}

TEST(AsCompletedTest, DuplicatesCountOnceInTheTimeoutMessage) {
  Fixtures fx;
  Futures yielded;
  try {
    for (const auto& f : webexec::as_completed(
             Futures{fx.successful, fx.pending, fx.successful, fx.pending}, 0ms)) {
      yielded.push_back(f);
    }
    ADD_FAILURE() << "as_completed did not time out";
  } catch (const webexec::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "1 (of 2) futures unfinished");
  }
  EXPECT_EQ(yielded, (Futures{fx.successful}));
}

TEST(AsCompletedTest, PendingDuplicateIsYieldedOnceWhenItCompletes) {
  webexec::Promise<int> promise;
  const webexec::Future<int> f = promise.future();
  auto completed = webexec::as_completed({f, f, f});
  promise.set_result(1);
  EXPECT_EQ(drain(completed).size(), 1U);
}

TEST(AsCompletedTest, AcceptsOtherRanges) {
  Fixtures fx;
  const std::list<webexec::Future<int>> list{fx.successful, fx.failed};
  EXPECT_EQ(drain(webexec::as_completed(list)), (Futures{fx.successful, fx.failed}));
  const std::deque<webexec::Future<int>> deque{fx.cancelled, fx.successful};
  EXPECT_EQ(drain(webexec::as_completed(deque)), (Futures{fx.cancelled, fx.successful}));
  const std::array<webexec::Future<int>, 2> array{fx.failed, fx.cancelled};
  EXPECT_EQ(drain(webexec::as_completed(array)), (Futures{fx.failed, fx.cancelled}));
}

TEST(AsCompletedTest, EmptyInputYieldsNothing) {
  const std::vector<webexec::Future<int>> none;
  auto completed = webexec::as_completed(none, 0ms);
  EXPECT_TRUE(completed.begin() == completed.end());
}

TEST(AsCompletedTest, EmptyHandleThrowsInvalidStateError) {
  const std::vector<webexec::Future<int>> fs{webexec::Future<int>{}};
  EXPECT_THROW(static_cast<void>(webexec::as_completed(fs)), webexec::InvalidStateError);
}

TEST(AsCompletedTest, PoolTasksAreAllYielded) {
  webexec::ThreadPoolExecutor pool(4);
  std::vector<webexec::Future<int>> fs;
  fs.reserve(20);
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit([i] { return i * i; }));
  std::vector<int> results;
  for (const auto& f : webexec::as_completed(fs)) {
    EXPECT_TRUE(f.done());
    results.push_back(f.result());
  }
  std::sort(results.begin(), results.end());
  std::vector<int> expected;
  expected.reserve(20);
  for (int i = 0; i < 20; ++i) expected.push_back(i * i);
  EXPECT_EQ(results, expected);
}

TEST(AsCompletedTest, PoolCompletionOrderIsFollowed) {
  // One worker runs the tasks strictly in submission order; the futures are
  // passed in reverse, yet they must be yielded in completion order.
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  std::vector<webexec::Future<int>> fs;
  fs.push_back(pool.submit([w = gate.waiter()] {
    w.wait();
    return 0;
  }));
  for (int i = 1; i < 5; ++i) fs.push_back(pool.submit([i] { return i; }));
  const std::vector<webexec::Future<int>> reversed(fs.rbegin(), fs.rend());
  auto completed = webexec::as_completed(reversed);
  gate.open();
  std::vector<int> order;
  for (const auto& f : completed) order.push_back(f.result());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(AsCompletedTest, FuturesCancelledByShutdownAreYielded) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto running = submit_blocker(pool, gate, -1);
  std::vector<webexec::Future<int>> queued;
  queued.reserve(3);
  for (int i = 0; i < 3; ++i) queued.push_back(pool.submit([i] { return i; }));

  // Iterate without a timeout while another thread cancels the queue: in
  // CPython (gh-87893) this loop never ends.
  auto completed = webexec::as_completed(queued);
  std::latch waiting(1);
  std::thread stopper([&] {
    waiting.wait();
    pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  });
  waiting.count_down();
  const Futures yielded = drain(completed);
  stopper.join();
  EXPECT_EQ(yielded.size(), 3U);
  for (const auto& f : yielded) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());

  gate.open();
  EXPECT_EQ(running.result(), -1);
}

TEST(AsCompletedTest, MixedResultTypesThroughAnyFuture) {
  webexec::Promise<int> ints;
  webexec::Promise<std::string> strings;
  const Futures fs{ints.future(), strings.future()};
  auto completed = webexec::as_completed(fs);
  strings.set_result("first");
  ints.set_result(2);
  const Futures yielded = drain(completed);
  ASSERT_EQ(yielded.size(), 2U);
  EXPECT_EQ(yielded[0].result<std::string>(), "first");
  EXPECT_EQ(yielded[1].result<int>(), 2);
}

}  // namespace
