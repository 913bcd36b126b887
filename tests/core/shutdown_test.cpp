// ThreadPoolExecutor::shutdown and the destructor: the semantics of CPython's
// Lib/test/test_concurrent_futures/test_shutdown.py, for threads.
#include "webexec/thread_pool_executor.hpp"  // the header under test comes first
// Then the rest, grouped as usual.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/wait.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::core::Gate;
using webexec_test::core::submit_blocker;
using webexec_test::core::threads_named;

/// Counts, in its destructor, the exit of the thread that owns it.
struct ExitCounter {
  ExitCounter() = default;
  ExitCounter(const ExitCounter&) = delete;
  ExitCounter& operator=(const ExitCounter&) = delete;
  ~ExitCounter() {
    if (counter != nullptr) counter->fetch_add(1);
  }
  std::atomic<int>* counter = nullptr;
};

/// Makes `counter` go up by one when the calling thread exits (thread_local
/// destructors run before pthread_join returns).
void count_exit_of_this_thread(std::atomic<int>& counter) {
  thread_local ExitCounter on_exit;
  on_exit.counter = &counter;
}

TEST(ShutdownTest, SubmitAfterShutdownThrowsShutdownError) {
  webexec::ThreadPoolExecutor pool(2);
  EXPECT_EQ(pool.submit([] { return 1; }).result(), 1);
  pool.shutdown();
  try {
    static_cast<void>(pool.submit([] { return 2; }));
    ADD_FAILURE() << "submit after shutdown returned";
  } catch (const webexec::ShutdownError& e) {
    EXPECT_STREQ(e.what(), "cannot schedule new futures after shutdown");
  }
  EXPECT_THROW(static_cast<void>(pool.map([](int x) { return x; }, std::vector<int>{1, 2})),
               webexec::ShutdownError);
}

TEST(ShutdownTest, SubmitAfterShutdownWithoutWaitThrowsShutdownError) {
  webexec::ThreadPoolExecutor pool(1);
  pool.shutdown(/*wait=*/false);
  EXPECT_THROW(static_cast<void>(pool.submit([] {})), webexec::ShutdownError);
}

TEST(ShutdownTest, ShutdownOfAnUnusedPool) {
  webexec::ThreadPoolExecutor pool(3);
  pool.shutdown();
  EXPECT_EQ(pool.thread_count(), 0U);
  EXPECT_THROW(static_cast<void>(pool.submit([] {})), webexec::ShutdownError);
}

TEST(ShutdownTest, ShutdownTwiceIsFine) {
  webexec::ThreadPoolExecutor pool(2);
  auto f = pool.submit([] { return 5; });
  EXPECT_NO_THROW(pool.shutdown());
  EXPECT_NO_THROW(pool.shutdown());
  EXPECT_NO_THROW(pool.shutdown(/*wait=*/false, /*cancel_futures=*/true));
  EXPECT_EQ(f.result(0ms), 5);
  EXPECT_THROW(static_cast<void>(pool.submit([] {})), webexec::ShutdownError);
}

TEST(ShutdownTest, ShutdownRunsWorkQueuedBeforeIt) {
  std::atomic<int> ran{0};
  webexec::ThreadPoolExecutor pool(2);
  Gate gate;
  std::vector<webexec::Future<void>> fs;
  for (int i = 0; i < 2; ++i) fs.push_back(pool.submit([w = gate.waiter()] { w.wait(); }));
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit([&ran] { ++ran; }));
  // Both workers are blocked (or about to be), so all 50 are still queued
  // when shutdown starts.
  pool.shutdown(/*wait=*/false);
  EXPECT_EQ(ran.load(), 0);
  gate.open();
  pool.shutdown(/*wait=*/true);
  EXPECT_EQ(ran.load(), 50);
  for (const auto& f : fs) EXPECT_TRUE(f.done());
  for (const auto& f : fs) EXPECT_FALSE(f.cancelled());
}

TEST(ShutdownTest, ShutdownWaitReturnsOnlyAfterAllQueuedWork) {
  std::atomic<int> ran{0};
  webexec::ThreadPoolExecutor pool(2);
  Gate gate;
  std::vector<webexec::Future<int>> fs;
  for (int i = 0; i < 50; ++i) {
    fs.push_back(pool.submit([&ran, i, w = gate.waiter()] {
      w.wait();
      ++ran;
      return i;
    }));
  }
  std::thread opener([&gate] { gate.open(); });  // races with the shutdown below
  pool.shutdown(/*wait=*/true);
  // No waiting here: everything must already be finished.
  EXPECT_EQ(ran.load(), 50);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(fs[static_cast<std::size_t>(i)].done());
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(0ms), i);
  }
  opener.join();
}

TEST(ShutdownTest, CancelFuturesCancelsQueuedWorkAndFinishesRunningWork) {
  constexpr int workers = 2;
  constexpr int queued_count = 20;
  std::latch started(workers);
  webexec::ThreadPoolExecutor pool(workers);
  Gate gate;
  std::vector<webexec::Future<int>> all;
  for (int i = 0; i < workers; ++i) {
    all.push_back(pool.submit([&started, w = gate.waiter()] {
      started.count_down();
      w.wait();
      return 1;
    }));
  }
  started.wait();  // both workers are busy: everything below stays queued
  std::vector<webexec::Future<int>> queued;
  queued.reserve(queued_count);
  for (int i = 0; i < queued_count; ++i) queued.push_back(pool.submit([] { return 2; }));
  all.insert(all.end(), queued.begin(), queued.end());

  std::thread stopper([&pool] { pool.shutdown(/*wait=*/true, /*cancel_futures=*/true); });
  // The queued futures are cancelled (and so done) while the workers are
  // still blocked; only then are the workers released.
  auto [done, not_done] = webexec::wait(queued);
  EXPECT_TRUE(not_done.empty());
  gate.open();
  stopper.join();

  int cancelled = 0;
  int finished = 0;
  int failed = 0;
  for (const auto& f : all) {
    ASSERT_TRUE(f.done());
    if (f.cancelled()) {
      ++cancelled;
    } else if (f.exception() != nullptr) {
      ++failed;
    } else {
      ++finished;
      EXPECT_EQ(f.result(), 1);
    }
  }
  EXPECT_EQ(cancelled, queued_count);
  EXPECT_EQ(finished, workers);
  EXPECT_EQ(failed, 0);
}

TEST(ShutdownTest, CancelFuturesWithoutWait) {
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto running = submit_blocker(pool, gate, 1);
  auto queued = pool.submit([] { return 2; });
  pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);  // returns with the worker blocked
  EXPECT_TRUE(queued.cancelled());
  EXPECT_FALSE(running.done());
  gate.open();
  EXPECT_EQ(running.result(), 1);
}

TEST(ShutdownTest, ShutdownWithoutWaitStillCompletesTheWork) {
  webexec::ThreadPoolExecutor pool(2);
  Gate gate;
  std::vector<webexec::Future<int>> fs;
  for (int i = 0; i < 10; ++i) {
    fs.push_back(pool.submit([i, w = gate.waiter()] {
      w.wait();
      return i * 3;
    }));
  }
  pool.shutdown(/*wait=*/false);  // must return although every task is blocked
  for (const auto& f : fs) EXPECT_FALSE(f.done());
  gate.open();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(), i * 3);
}

TEST(ShutdownTest, SubmitCancelThenShutdownDoesNotHang) {
  // gh-94440: a future cancelled right after submit must not keep
  // shutdown(wait=true) waiting. Repeated to hit both orders of the race
  // between the worker taking the task and the cancel.
  for (int i = 0; i < 20; ++i) {
    webexec::ThreadPoolExecutor pool(1);
    auto f = pool.submit([] { return 1; });
    const bool cancelled = f.cancel();
    pool.shutdown(/*wait=*/true);
    ASSERT_TRUE(f.done());
    if (cancelled) {
      EXPECT_TRUE(f.cancelled());
    } else {
      EXPECT_EQ(f.result(0ms), 1);
    }
  }
}

TEST(ShutdownTest, CancelledQueuedTaskDoesNotBlockShutdown) {
  // The deterministic form of gh-94440: the cancel surely hits a queued task.
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  auto blocker = submit_blocker(pool, gate);
  auto f = pool.submit([] { return 1; });
  ASSERT_TRUE(f.cancel());
  gate.open();
  pool.shutdown(/*wait=*/true);
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(blocker.done());
}

TEST(ShutdownTest, DestructorShutsDownAndWaits) {
  std::atomic<int> ran{0};
  std::vector<webexec::Future<int>> fs;
  Gate gate;
  std::thread opener;
  {
    webexec::ThreadPoolExecutor pool(2);
    for (int i = 0; i < 10; ++i) {
      fs.push_back(pool.submit([&ran, i, w = gate.waiter()] {
        w.wait();
        ++ran;
        return i;
      }));
    }
    opener = std::thread([&gate] { gate.open(); });  // races with the destructor
  }
  EXPECT_EQ(ran.load(), 10);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(fs[static_cast<std::size_t>(i)].done());
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(0ms), i);
  }
  opener.join();
}

TEST(ShutdownTest, WorkerThreadsExitOnShutdown) {
  std::atomic<int> exited{0};
  std::latch started(3);
  webexec::ThreadPoolExecutor pool(
      webexec::ThreadPoolOptions{.max_workers = 3, .thread_name_prefix = "wxsdexit"});
  Gate gate;
  std::vector<webexec::Future<void>> fs;
  for (int i = 0; i < 3; ++i) {
    fs.push_back(pool.submit([&started, &exited, w = gate.waiter()] {
      count_exit_of_this_thread(exited);
      started.count_down();
      w.wait();
    }));
  }
  started.wait();
  EXPECT_EQ(threads_named("wxsdexit_"), 3U);
  EXPECT_EQ(exited.load(), 0);
  gate.open();
  pool.shutdown(/*wait=*/true);
  EXPECT_EQ(exited.load(), 3);  // every worker thread has ended
}

TEST(ShutdownTest, ShutdownWithWaitFromAWorkerThrowsInvalidStateError) {
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit([&pool] {
    try {
      pool.shutdown(/*wait=*/true);
    } catch (const webexec::InvalidStateError&) {
      return true;
    }
    return false;
  });
  EXPECT_TRUE(f.result());
  // The failed call did not shut the pool down.
  EXPECT_EQ(pool.submit([] { return 2; }).result(), 2);
}

TEST(ShutdownTest, ShutdownWithoutWaitFromAWorkerIsAllowed) {
  webexec::ThreadPoolExecutor pool(1);
  auto f = pool.submit([&pool] {
    pool.shutdown(/*wait=*/false);
    return 7;
  });
  EXPECT_EQ(f.result(), 7);
  EXPECT_THROW(static_cast<void>(pool.submit([] {})), webexec::ShutdownError);
}

TEST(ShutdownTest, SubmitsRacingShutdownAreRunOrRejected) {
  // Every submit either throws ShutdownError or returns a future that the
  // waiting shutdown completes: nothing accepted is left behind.
  webexec::ThreadPoolExecutor pool(2);
  std::vector<webexec::Future<int>> accepted;
  int rejected = 0;
  std::latch go(2);
  std::thread submitter([&] {
    go.arrive_and_wait();
    for (int i = 0; i < 2000; ++i) {
      try {
        accepted.push_back(pool.submit([i] { return i; }));
      } catch (const webexec::ShutdownError&) {
        ++rejected;
      }
    }
  });
  go.arrive_and_wait();
  pool.shutdown(/*wait=*/true);
  submitter.join();
  EXPECT_EQ(accepted.size() + static_cast<std::size_t>(rejected), 2000U);
  for (const auto& f : accepted) {
    ASSERT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
  }
}

TEST(ShutdownTest, ConcurrentShutdownsWithWaitAllWaitForTheRunningTask) {
  // CPython: every shutdown(wait=True) joins every thread. Two callers race;
  // neither may return while the task still runs.
  webexec::ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<bool> task_done{false};
  std::latch started(1);
  auto f = pool.submit([&started, &task_done, w = gate.waiter()] {
    started.count_down();
    w.wait();
    task_done.store(true);
  });
  started.wait();

  constexpr int kCallers = 2;
  std::atomic<int> returned{0};
  std::atomic<int> returned_early{0};
  std::promise<void> first_return;
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&] {
      pool.shutdown(true);
      if (!task_done.load()) returned_early.fetch_add(1);
      if (returned.fetch_add(1) == 0) first_return.set_value();
    });
  }
  // With the fix neither caller returns before the gate opens, so this
  // bounded wait times out; the old code let one return at once.
  const auto status = first_return.get_future().wait_for(300ms);
  EXPECT_EQ(status, std::future_status::timeout) << "a shutdown(wait=true) returned early";
  gate.open();
  for (auto& t : callers) t.join();
  EXPECT_EQ(returned_early.load(), 0) << "shutdown(wait=true) returned while a task still ran";
  EXPECT_TRUE(f.done());
}

TEST(ShutdownTest, IsShutdownReportsTheShutdown) {
  webexec::ThreadPoolExecutor pool(1);
  EXPECT_FALSE(pool.is_shutdown());
  EXPECT_EQ(pool.submit([] { return 1; }).result(), 1);
  EXPECT_FALSE(pool.is_shutdown());
  pool.shutdown(false);
  EXPECT_TRUE(pool.is_shutdown());
  pool.shutdown(true);
  EXPECT_TRUE(pool.is_shutdown());
}

TEST(ShutdownTest, PoolDestroyedFromItsOwnDoneCallbackDoesNotAbort) {
  std::atomic<int> exited{0};
  auto* pool = new webexec::ThreadPoolExecutor(webexec::ThreadPoolOptions{
      .max_workers = 2, .initializer = [&exited] { count_exit_of_this_thread(exited); }});
  Gate gate;
  auto f = pool->submit([w = gate.waiter()] {
    w.wait();
    return 5;
  });
  std::promise<void> destroyed;
  // Added while the task is held, so the worker runs it after the task.
  f.add_done_callback([pool, &destroyed](const webexec::Future<int>&) {
    delete pool;  // NOLINT(cppcoreguidelines-owning-memory)
    destroyed.set_value();
  });
  gate.open();
  EXPECT_EQ(f.result(), 5);
  ASSERT_EQ(destroyed.get_future().wait_for(10s), std::future_status::ready);
  // Its workers exit on their own (bounded wait: they are detached).
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (exited.load() < 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  EXPECT_GE(exited.load(), 1);
}

}  // namespace
