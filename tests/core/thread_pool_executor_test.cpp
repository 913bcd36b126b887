// ThreadPoolExecutor: the semantics of CPython's ExecutorTest
// (Lib/test/test_concurrent_futures/executor.py) and test_thread_pool.py,
// plus webexec's additions: stop tokens, inline runs instead of deadlocks,
// and errors for a task that waits for itself.
#include "webexec/thread_pool_executor.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <list>
#include <memory>
#include <mutex>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/map_result.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::core::Gate;
using webexec_test::core::submit_blocker;
using webexec_test::core::TestError;

/// Blocks until `token` is stopped, or (a safety net, so that a broken stop
/// path fails the test instead of hanging it) 60 s pass. Returns whether a
/// stop was requested.
bool wait_for_stop(const std::stop_token& token) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  static_cast<void>(cv.wait_for(lock, token, 60s, [] { return false; }));
  return token.stop_requested();
}

/// The names (/proc comm) of this process's threads that start with `prefix`.
std::vector<std::string> thread_names_starting_with(const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;  // the thread exited meanwhile
    if (name.starts_with(prefix)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// The /proc comm name of the calling thread.
std::string own_thread_name() {
  std::ifstream comm("/proc/thread-self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// --- submit ----------------------------------------------------------------------------

TEST(ThreadPoolExecutorTest, SubmitReturnsTheResult) {
  webexec::ThreadPoolExecutor pool(2);
  auto power = pool.submit(
      [](int base, int exponent) {
        int r = 1;
        for (int i = 0; i < exponent; ++i) r *= base;
        return r;
      },
      2, 8);
  EXPECT_EQ(power.result(), 256);
  auto text = pool.submit([](const std::string& s) { return s + "!"; }, std::string("hi"));
  EXPECT_EQ(text.result(), "hi!");
  auto nothing = pool.submit([] {});
  EXPECT_NO_THROW(nothing.result());
  EXPECT_EQ(nothing.state(), webexec::FutureState::finished);
}

TEST(ThreadPoolExecutorTest, SubmitPropagatesTheTaskException) {
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit([]() -> int { throw TestError("task failed"); });
  try {
    static_cast<void>(f.result());
    ADD_FAILURE() << "result() returned";
  } catch (const TestError& e) {
    EXPECT_STREQ(e.what(), "task failed");
  }
  EXPECT_EQ(f.state(), webexec::FutureState::finished);
  EXPECT_FALSE(f.cancelled());
  EXPECT_THROW(std::rethrow_exception(f.exception()), TestError);
}

TEST(ThreadPoolExecutorTest, ManySubmitsAllComplete) {
  webexec::ThreadPoolExecutor pool(4);
  std::vector<webexec::Future<long>> fs;
  fs.reserve(1000);
  for (long i = 0; i < 1000; ++i) fs.push_back(pool.submit([i] { return i; }));
  long sum = 0;
  for (const auto& f : fs) sum += f.result();
  EXPECT_EQ(sum, 999L * 1000L / 2L);
}

TEST(ThreadPoolExecutorTest, ArgumentsAndCallableAreDecayCopied) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });

  std::string text = "before";
  int number = 1;
  auto copied_args =
      pool.submit([](const std::string& s, int n) { return s + std::to_string(n); }, text, number);

  struct Adder {
    int base;
    int operator()(int x) const { return base + x; }
  };
  Adder adder{10};
  auto copied_callable = pool.submit(adder, 1);

  const char literal[] = "array";  // decays to const char*
  auto decayed = pool.submit([](const char* s) { return std::string(s); }, literal);

  int target = 0;
  auto by_reference = pool.submit([](int& out) { out = 5; }, std::ref(target));

  auto moved = pool.submit([](std::unique_ptr<int> p) { return *p; }, std::make_unique<int>(9));

  // Change everything while the tasks are still queued behind the blocker.
  text = "after";
  number = 2;
  adder.base = 100;
  gate.open();

  EXPECT_EQ(copied_args.result(), "before1");
  EXPECT_EQ(copied_callable.result(), 11);
  EXPECT_EQ(decayed.result(), "array");
  by_reference.result();
  EXPECT_EQ(target, 5);
  EXPECT_EQ(moved.result(), 9);
  blocker.result();
}

TEST(ThreadPoolExecutorTest, DoneCallbackRunsOnTheWorker) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });
  auto f = pool.submit([] { return std::this_thread::get_id(); });
  std::promise<std::thread::id> callback_thread;
  f.add_done_callback([&callback_thread](const webexec::Future<std::thread::id>&) {
    callback_thread.set_value(std::this_thread::get_id());
  });
  gate.open();
  const std::thread::id worker = f.result();
  EXPECT_EQ(callback_thread.get_future().get(), worker);
  EXPECT_NE(worker, std::this_thread::get_id());
  blocker.result();
}

TEST(ThreadPoolExecutorTest, CancelPendingTask) {
  std::atomic<bool> ran{false};
  std::latch started(1);
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
  });
  auto f = pool.submit([&ran] { ran = true; });
  started.wait();
  EXPECT_EQ(f.state(), webexec::FutureState::pending);
  EXPECT_TRUE(f.cancel());
  EXPECT_FALSE(blocker.cancel());  // running
  EXPECT_TRUE(blocker.running());
  gate.open();
  pool.shutdown();
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW(f.result(), webexec::CancelledError);
  EXPECT_FALSE(ran);
}

// --- no stale references (bpo-16284) ---------------------------------------------------

TEST(ThreadPoolExecutorTest, NoStaleReferencesAfterResult) {
  webexec::ThreadPoolExecutor pool(2);
  auto captured = std::make_shared<int>(7);
  auto argument = std::make_shared<int>(8);
  const std::weak_ptr<int> captured_watch = captured;
  const std::weak_ptr<int> argument_watch = argument;
  auto f = pool.submit([captured](const std::shared_ptr<int>& arg) { return *captured + *arg; },
                       std::move(argument));
  captured.reset();
  EXPECT_EQ(f.result(), 15);
  // The callable and its arguments are destroyed before the result is
  // published, so this holds as soon as result() returns.
  EXPECT_TRUE(captured_watch.expired());
  EXPECT_TRUE(argument_watch.expired());
}

TEST(ThreadPoolExecutorTest, NoStaleReferencesAfterException) {
  webexec::ThreadPoolExecutor pool(1);
  auto captured = std::make_shared<int>(1);
  const std::weak_ptr<int> watch = captured;
  auto f = pool.submit([captured]() -> int { throw TestError("x"); });
  captured.reset();
  EXPECT_THROW(f.result(), TestError);
  EXPECT_TRUE(watch.expired());
}

TEST(ThreadPoolExecutorTest, NoStaleReferencesAfterCancel) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });
  auto captured = std::make_shared<int>(1);
  const std::weak_ptr<int> watch = captured;
  auto f = pool.submit([captured] { return *captured; });
  captured.reset();
  EXPECT_FALSE(watch.expired());  // queued: the task still holds it
  ASSERT_TRUE(f.cancel());
  EXPECT_TRUE(watch.expired());
  gate.open();
  blocker.result();
}

// --- map -------------------------------------------------------------------------------

TEST(ThreadPoolExecutorTest, MapYieldsResultsInInputOrder) {
  // Four workers run the four items at once, and the items finish in
  // reverse order; map still yields them in input order.
  constexpr int n = 4;
  webexec::ThreadPoolExecutor pool(n);
  std::atomic<int> turn{0};
  auto results = pool.map(
      [&turn](int i) {
        const int my_turn = n - 1 - i;
        for (int now = turn.load(); now != my_turn; now = turn.load()) turn.wait(now);
        turn.fetch_add(1);
        turn.notify_all();
        return i * i;
      },
      std::vector<int>{0, 1, 2, 3});
  EXPECT_EQ(results.size(), 4U);
  std::vector<int> seen;
  for (int v : results) seen.push_back(v);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4, 9}));
}

TEST(ThreadPoolExecutorTest, MapOfManyItems) {
  webexec::ThreadPoolExecutor pool(3);
  std::vector<int> input(200);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<int>(i);
  std::vector<int> seen;
  for (int v : pool.map([](int x) { return 2 * x; }, input)) seen.push_back(v);
  ASSERT_EQ(seen.size(), input.size());
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 2 * input[i]);
}

TEST(ThreadPoolExecutorTest, MapZipsRangesAndStopsAtTheShortest) {
  webexec::ThreadPoolExecutor pool(2);
  auto sums = pool.map([](int a, int b) { return a + b; }, std::vector<int>{1, 2, 3},
                       std::list<int>{10, 20});
  EXPECT_EQ(sums.size(), 2U);
  std::vector<int> seen;
  for (int v : sums) seen.push_back(v);
  EXPECT_EQ(seen, (std::vector<int>{11, 22}));

  std::vector<std::string> labels;
  for (const std::string& s :
       pool.map([](const std::string&word, int i) { return word + std::to_string(i); },
                std::vector<std::string>{"a", "b", "c"}, std::vector<int>{0, 1, 2, 3, 4})) {
    labels.push_back(s);
  }
  EXPECT_EQ(labels, (std::vector<std::string>{"a0", "b1", "c2"}));
}

TEST(ThreadPoolExecutorTest, MapOfVoidYieldsMonostate) {
  webexec::ThreadPoolExecutor pool(2);
  std::atomic<int> sum{0};
  int count = 0;
  for (const std::monostate& unit : pool.map([&sum](int x) { sum += x; }, std::vector{1, 2, 3})) {
    static_cast<void>(unit);
    ++count;
  }
  EXPECT_EQ(count, 3);
  EXPECT_EQ(sum.load(), 6);
}

TEST(ThreadPoolExecutorTest, MapOfEmptyRangeYieldsNothing) {
  webexec::ThreadPoolExecutor pool(1);
  auto results = pool.map([](int x) { return x; }, std::vector<int>{});
  EXPECT_EQ(results.size(), 0U);
  EXPECT_TRUE(results.begin() == results.end());
}

TEST(ThreadPoolExecutorTest, MapExceptionSurfacesAtTheFailingItemAndCancelsTheRest) {
  std::atomic<bool> last_ran{false};
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  // One worker: items run in order. Item 3 blocks, so item 4 is still
  // queued when the exception of item 2 surfaces.
  auto results = pool.map(
      [w = gate.waiter(), &last_ran](int x) {
        if (x == 2) throw TestError("item 2 failed");
        if (x == 3) w.wait();
        if (x == 4) last_ran = true;
        return x * 10;
      },
      std::vector<int>{0, 1, 2, 3, 4});
  std::vector<int> seen;
  // Only the type is checked, not what(): the map range drops its reference
  // to the failed future before rethrowing, so a worker may free the
  // exception after this catch; libstdc++'s exception refcount is invisible
  // to ThreadSanitizer, which would report reading the message as a race.
  try {
    for (int v : results) seen.push_back(v);
    ADD_FAILURE() << "iteration did not throw";
  } catch (const TestError&) {
    // expected: item 2's exception
  }
  EXPECT_EQ(seen, (std::vector<int>{0, 10}));
  gate.open();
  pool.shutdown();
  EXPECT_FALSE(last_ran);
}

TEST(ThreadPoolExecutorTest, MapTimeoutYieldsCompletedValuesThenTimeoutError) {
  std::atomic<bool> last_ran{false};
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  // Items 0 and 1 return at once; item 2 blocks until after the deadline;
  // item 3 is still queued behind it, and must be cancelled.
  auto results = pool.map(
      [w = gate.waiter(), &last_ran](int x) {
        if (x == 2) w.wait();
        if (x == 3) last_ran = true;
        return x;
      },
      std::vector<int>{0, 1, 2, 3}, 500ms);
  std::vector<int> seen;
  try {
    for (int v : results) seen.push_back(v);
    ADD_FAILURE() << "iteration did not time out";
  } catch (const webexec::TimeoutError&) {
    // expected: item 2 is still blocked at the deadline
  }
  EXPECT_EQ(seen, (std::vector<int>{0, 1}));
  gate.open();
  pool.shutdown();
  EXPECT_FALSE(last_ran);
}

TEST(ThreadPoolExecutorTest, MapZeroTimeoutCancelsCurrentAndRemainingItems) {
  std::atomic<int> ran{0};
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });
  auto results = pool.map(
      [&ran](int x) {
        ++ran;
        return x;
      },
      std::vector<int>{1, 2, 3}, 0ms);
  EXPECT_THROW(static_cast<void>(results.begin()), webexec::TimeoutError);
  gate.open();
  pool.shutdown();
  EXPECT_EQ(ran.load(), 0);
}

TEST(ThreadPoolExecutorTest, MapWithoutIterationStillRunsEveryTask) {
  std::atomic<int> ran{0};
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });
  {
    auto results = pool.map(
        [&ran](int x) {
          ++ran;
          return x;
        },
        std::vector<int>{1, 2, 3, 4, 5});
    EXPECT_EQ(results.size(), 5U);
  }  // destroyed before any of its tasks ran
  gate.open();
  pool.shutdown();
  EXPECT_EQ(ran.load(), 5);
}

TEST(ThreadPoolExecutorTest, MapAbandonedIterationCancelsTheRest) {
  std::atomic<int> ran_after_second{0};
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  {
    auto results = pool.map(
        [w = gate.waiter(), &ran_after_second](int x) {
          if (x == 1) w.wait();
          if (x > 1) ++ran_after_second;
          return x;
        },
        std::vector<int>{0, 1, 2, 3});
    auto it = results.begin();
    ASSERT_FALSE(it == results.end());
    EXPECT_EQ(*it, 0);
  }  // abandoned after the first item: items 2 and 3 are still queued
  gate.open();
  pool.shutdown();
  EXPECT_EQ(ran_after_second.load(), 0);
}

// --- worker threads --------------------------------------------------------------------

TEST(ThreadPoolExecutorTest, DefaultMaxWorkersIsCpusPlusFourUpToThirtyTwo) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const int expected = std::min(32, CPU_COUNT(&set) + 4);
  const webexec::ThreadPoolExecutor pool;
  EXPECT_EQ(pool.max_workers(), expected);
  const webexec::ThreadPoolExecutor from_options{webexec::ThreadPoolOptions{}};
  EXPECT_EQ(from_options.max_workers(), expected);
  EXPECT_EQ(pool.thread_count(), 0U);  // threads start lazily
}

TEST(ThreadPoolExecutorTest, ExplicitMaxWorkers) {
  const webexec::ThreadPoolExecutor pool(3);
  EXPECT_EQ(pool.max_workers(), 3);
  const webexec::ThreadPoolExecutor from_options(webexec::ThreadPoolOptions{.max_workers = 40});
  EXPECT_EQ(from_options.max_workers(), 40);
}

TEST(ThreadPoolExecutorTest, InvalidMaxWorkersThrowsInvalidArgument) {
  EXPECT_THROW(webexec::ThreadPoolExecutor{0}, std::invalid_argument);
  EXPECT_THROW(webexec::ThreadPoolExecutor{-1}, std::invalid_argument);
  EXPECT_THROW(webexec::ThreadPoolExecutor{webexec::ThreadPoolOptions{.max_workers = 0}},
               std::invalid_argument);
  EXPECT_THROW(webexec::ThreadPoolExecutor{webexec::ThreadPoolOptions{.max_workers = -1}},
               std::invalid_argument);
}

TEST(ThreadPoolExecutorTest, SaturationStartsExactlyMaxWorkersThreads) {
  constexpr int max_workers = 4;
  std::latch started(max_workers);
  webexec::ThreadPoolExecutor pool(max_workers);
  Gate gate;
  std::vector<webexec::Future<void>> fs;
  for (int i = 0; i < max_workers; ++i) {
    fs.push_back(pool.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
    }));
  }
  started.wait();  // all four are running at once, so there are four threads
  EXPECT_EQ(pool.thread_count(), static_cast<std::size_t>(max_workers));
  for (int i = 0; i < 15 * max_workers; ++i) {
    fs.push_back(pool.submit([w = gate.waiter()] { w.wait(); }));
  }
  EXPECT_EQ(pool.thread_count(), static_cast<std::size_t>(max_workers));
  gate.open();
  for (const auto& f : fs) f.result();
  EXPECT_EQ(pool.thread_count(), static_cast<std::size_t>(max_workers));
}

TEST(ThreadPoolExecutorTest, IdleThreadIsReused) {
  webexec::ThreadPoolExecutor pool;  // room for more than one thread
  ASSERT_GT(pool.max_workers(), 1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pool.submit([i] { return i; }).result(), i);
  EXPECT_EQ(pool.thread_count(), 1U);
}

TEST(ThreadPoolExecutorTest, ThreadNamesCarryThePrefix) {
  std::latch started(2);
  webexec::ThreadPoolExecutor pool(
      webexec::ThreadPoolOptions{.max_workers = 2, .thread_name_prefix = "wxtpool"});
  Gate gate;
  auto a = pool.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return own_thread_name();
  });
  auto b = pool.submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return own_thread_name();
  });
  started.wait();
  EXPECT_EQ(thread_names_starting_with("wxtpool"),
            (std::vector<std::string>{"wxtpool_0", "wxtpool_1"}));
  gate.open();
  std::vector<std::string> own{a.result(), b.result()};
  std::sort(own.begin(), own.end());
  EXPECT_EQ(own, (std::vector<std::string>{"wxtpool_0", "wxtpool_1"}));
}

TEST(ThreadPoolExecutorTest, LongThreadNamesAreTruncatedToFifteenBytes) {
  webexec::ThreadPoolExecutor pool(
      webexec::ThreadPoolOptions{.max_workers = 1, .thread_name_prefix = "wxlongprefix12345"});
  EXPECT_EQ(pool.submit(own_thread_name).result(), "wxlongprefix123");
}

TEST(ThreadPoolExecutorTest, DefaultThreadNamePrefix) {
  webexec::ThreadPoolExecutor pool(1);
  const std::string name = pool.submit(own_thread_name).result();
  // "ThreadPoolExecutor-<n>_0", cut to 15 bytes by Linux.
  EXPECT_EQ(name, "ThreadPoolExecu");
}

// --- stop tokens -----------------------------------------------------------------------

TEST(ThreadPoolExecutorTest, RequestStopReachesARunningTask) {
  std::latch started(1);
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit([&started](const std::stop_token& token) {
    started.count_down();
    return wait_for_stop(token);
  });
  started.wait();
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.stop_requested());
  EXPECT_TRUE(f.request_stop());
  EXPECT_TRUE(f.result());
  EXPECT_TRUE(f.stop_requested());
}

TEST(ThreadPoolExecutorTest, StopTokenComesBeforeTheArguments) {
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit(
      [](const std::stop_token& token, int a, const std::string& b) {
        return std::to_string(a) + b + (token.stop_possible() ? "+token" : "");
      },
      1, std::string("x"));
  EXPECT_EQ(f.result(), "1x+token");
}

TEST(ThreadPoolExecutorTest, RequestStopDoesNotCancelAPendingTask) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = pool.submit([w = gate.waiter()] { w.wait(); });
  auto f = pool.submit([](const std::stop_token& token) { return token.stop_requested(); });
  EXPECT_TRUE(f.request_stop());
  EXPECT_EQ(f.state(), webexec::FutureState::pending);
  EXPECT_TRUE(f.stop_requested());
  gate.open();
  EXPECT_NO_THROW(static_cast<void>(f.result()));  // it still runs
  EXPECT_FALSE(f.cancelled());
}

TEST(ThreadPoolExecutorTest, RequestStopWithoutTokenReturnsFalse) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto f = submit_blocker(pool, gate, 3);
  EXPECT_FALSE(f.request_stop());
  EXPECT_FALSE(f.stop_requested());
  gate.open();
  EXPECT_EQ(f.result(), 3);
}

TEST(ThreadPoolExecutorTest, ShutdownWithCancelFuturesStopsRunningTokenTasks) {
  std::latch started(1);
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit([&started](const std::stop_token& token) {
    started.count_down();
    return wait_for_stop(token);
  });
  auto queued = pool.submit([] { return 1; });
  started.wait();
  pool.shutdown(/*wait=*/true, /*cancel_futures=*/true);  // returns only if f stopped
  EXPECT_TRUE(f.result(0ms));
  EXPECT_TRUE(f.stop_requested());
  EXPECT_TRUE(queued.cancelled());
}

// --- waiting from inside the pool ------------------------------------------------------

TEST(ThreadPoolExecutorTest, ResultInsideWorkerRunsPendingTaskInline) {
  webexec::ThreadPoolExecutor pool(1);  // the only worker is the one waiting
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return std::this_thread::get_id(); });
    EXPECT_EQ(inner.state(), webexec::FutureState::pending);
    return inner.result() == std::this_thread::get_id();
  });
  EXPECT_TRUE(outer.result());
  EXPECT_EQ(pool.thread_count(), 1U);
}

TEST(ThreadPoolExecutorTest, NestedWaitsInsideWorkersDoNotDeadlock) {
  webexec::ThreadPoolExecutor pool(2);
  std::function<int(int)> fib;  // recursion through the pool, waiting on each level
  fib = [&pool, &fib](int n) -> int {
    if (n < 2) return n;
    auto a = pool.submit(fib, n - 1);
    auto b = pool.submit(fib, n - 2);
    return a.result() + b.result();
  };
  EXPECT_EQ(pool.submit(fib, 10).result(), 55);
}

TEST(ThreadPoolExecutorTest, ResultOfOwnFutureInsideTaskThrowsInvalidStateError) {
  webexec::ThreadPoolExecutor pool(1);
  std::promise<webexec::Future<int>> self_promise;
  const std::shared_future<webexec::Future<int>> self = self_promise.get_future().share();
  auto f = pool.submit([self] {
    const webexec::Future<int>& me = self.get();
    int errors = 0;
    try {
      static_cast<void>(me.result());
    } catch (const webexec::InvalidStateError&) {
      ++errors;
    }
    try {
      static_cast<void>(me.exception());
    } catch (const webexec::InvalidStateError&) {
      ++errors;
    }
    try {
      static_cast<void>(me.wait());
    } catch (const webexec::InvalidStateError&) {
      ++errors;
    }
    return errors;
  });
  self_promise.set_value(f);
  EXPECT_EQ(f.result(), 3);
}

TEST(ThreadPoolExecutorTest, WaitOnAnotherPoolsTaskFromAWorkerWaits) {
  // Inline runs are only for the worker's own pool: a task of another pool
  // is left to that pool's workers.
  webexec::ThreadPoolExecutor first(1);
  webexec::ThreadPoolExecutor second(1);
  Gate gate;
  auto other_blocker = submit_blocker(second, gate);
  auto other = second.submit([] { return std::this_thread::get_id(); });
  auto f = first.submit([other] { return other.result() != std::this_thread::get_id(); });
  gate.open();
  EXPECT_TRUE(f.result());  // `other` ran on the second pool's worker
  other_blocker.result();
}

TEST(ThreadPoolExecutorTest, SubmitDuringASlowDoneCallbackStartsAThread) {
  // CPython's order: a worker is idle only after its callbacks ran. The
  // callback blocks until the second task has run; on the old code the
  // second task waited behind the callback (bounded here by kWait).
  constexpr auto kWait = 10s;
  webexec::ThreadPoolExecutor pool(4);
  Gate gate;
  std::latch task_started(1);
  auto first = pool.submit([&task_started, w = gate.waiter()] {
    task_started.count_down();
    w.wait();
    return 1;
  });
  task_started.wait();
  std::promise<void> in_callback;
  std::promise<void> second_ran;
  auto second_ran_future = second_ran.get_future();
  std::atomic<bool> second_ran_during_callback{false};
  first.add_done_callback([&](const webexec::Future<int>&) {
    in_callback.set_value();
    second_ran_during_callback.store(second_ran_future.wait_for(kWait) ==
                                     std::future_status::ready);
  });
  gate.open();
  in_callback.get_future().wait();
  auto second = pool.submit([&second_ran] { second_ran.set_value(); });
  second.result();
  EXPECT_TRUE(second.done());
  pool.shutdown(true);
  EXPECT_TRUE(second_ran_during_callback.load())
      << "the submit waited behind the first worker's done callback";
  EXPECT_EQ(pool.thread_count(), 2U);
}

TEST(ThreadPoolExecutorTest, MapResultCanBeMoveAssigned) {
  webexec::ThreadPoolExecutor pool(2);
  auto results = pool.map([](int x) { return x + 1; }, std::vector{1, 2, 3});
  results = pool.map([](int x) { return x * 10; }, std::vector{4, 5});
  std::vector<int> seen;
  for (int v : results) seen.push_back(v);
  EXPECT_EQ(seen, (std::vector{40, 50}));

  // Assigning over a started range cancels its remaining items, as its
  // destructor would. One worker: item 1 runs, item 2 holds the worker,
  // item 3 waits in the queue.
  webexec::ThreadPoolExecutor single(1);
  Gate gate;
  std::atomic<int> third_ran{0};
  auto started = single.map(
      [&third_ran, w = gate.waiter()](int x) {
        if (x == 2) w.wait();
        if (x == 3) third_ran.fetch_add(1);
        return x;
      },
      std::vector{1, 2, 3});
  EXPECT_EQ(*started.begin(), 1);
  started = single.map([](int x) { return -x; }, std::vector{9});
  gate.open();
  seen.clear();
  for (int v : started) seen.push_back(v);
  EXPECT_EQ(seen, (std::vector{-9}));
  single.shutdown(true);
  EXPECT_EQ(third_ran.load(), 0) << "the replaced range's pending item still ran";
}

}  // namespace
