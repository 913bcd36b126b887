// ThreadPoolOptions::initializer: the semantics of CPython's
// Lib/test/test_concurrent_futures/test_init.py, for threads.
#include "webexec/thread_pool_executor.hpp"  // the header under test comes first
// Then the rest, grouped as usual.
#include <algorithm>
#include <atomic>
#include <exception>
#include <future>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"

#include "support/core_fixtures.hpp"

namespace {

using webexec_test::core::ErrorLog;
using webexec_test::core::ScopedErrorHandler;
using webexec_test::core::TestError;

/// What the calling thread's initializer recorded (0: none ran).
int& initialized_as() {
  thread_local int id = 0;
  return id;
}

TEST(InitializerTest, RunsBeforeTheFirstTaskOnItsThread) {
  std::atomic<int> calls{0};
  webexec::ThreadPoolExecutor pool(webexec::ThreadPoolOptions{
      .max_workers = 1,
      .thread_name_prefix = {},
      .initializer = [&calls] { initialized_as() = ++calls; },
  });
  EXPECT_EQ(calls.load(), 0);  // threads, and so initializers, start lazily
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(pool.submit([] { return initialized_as(); }).result(), 1);
  }
  pool.shutdown();
  EXPECT_EQ(calls.load(), 1);  // one worker, one initializer run
}

TEST(InitializerTest, RunsOnceOnEveryWorkerThread) {
  constexpr int workers = 3;
  std::atomic<int> calls{0};
  std::latch started(workers);
  webexec::ThreadPoolExecutor pool(webexec::ThreadPoolOptions{
      .max_workers = workers,
      .thread_name_prefix = {},
      .initializer = [&calls] { initialized_as() = ++calls; },
  });
  std::promise<void> release;
  const std::shared_future<void> released = release.get_future().share();
  std::vector<webexec::Future<int>> fs;
  fs.reserve(workers);
  for (int i = 0; i < workers; ++i) {
    fs.push_back(pool.submit([&started, released] {
      started.count_down();
      released.wait();  // keep all three threads busy at once
      return initialized_as();
    }));
  }
  started.wait();
  release.set_value();
  std::vector<int> ids;
  ids.reserve(fs.size());
  for (const auto& f : fs) ids.push_back(f.result());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<int>{1, 2, 3}));  // each thread ran its own initializer
  EXPECT_EQ(calls.load(), workers);
  EXPECT_EQ(pool.thread_count(), static_cast<std::size_t>(workers));
}

TEST(InitializerTest, NeverRunsWithoutWork) {
  std::atomic<int> calls{0};
  {
    webexec::ThreadPoolExecutor pool(webexec::ThreadPoolOptions{
        .max_workers = 4,
        .thread_name_prefix = {},
        .initializer = [&calls] { ++calls; },
    });
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(InitializerTest, FailingInitializerBreaksThePool) {
  ErrorLog log;
  const ScopedErrorHandler guard(log.handler());
  std::atomic<int> ran{0};
  // The initializer fails only once the test has queued its tasks, so they
  // are surely pending when the pool breaks.
  std::promise<void> go;
  const std::shared_future<void> may_fail = go.get_future().share();
  {
    webexec::ThreadPoolExecutor pool(webexec::ThreadPoolOptions{
        .max_workers = 1,
        .thread_name_prefix = {},
        .initializer =
            [may_fail] {
              may_fail.wait();
              throw TestError("initializer failed");
            },
    });
    std::vector<webexec::Future<int>> fs;
    fs.reserve(3);
    for (int i = 0; i < 3; ++i) {
      fs.push_back(pool.submit([&ran, i] {
        ++ran;
        return i;
      }));
    }
    go.set_value();

    for (const auto& f : fs) {
      EXPECT_THROW(f.result(), webexec::BrokenThreadPool);
      EXPECT_THROW(f.result(), webexec::BrokenExecutor);  // the Python base class
      EXPECT_EQ(f.state(), webexec::FutureState::finished);
    }
    // Once a future has failed the pool is known to be broken: later submits
    // are refused at once.
    EXPECT_THROW(static_cast<void>(pool.submit([] { return 0; })), webexec::BrokenThreadPool);
    EXPECT_THROW(static_cast<void>(pool.map([](int x) { return x; }, std::vector<int>{1})),
                 webexec::BrokenExecutor);
  }  // the destructor joins the failed worker
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(log.reports(),
            (std::vector<std::string>{"ThreadPoolExecutor initializer: initializer failed"}));
}

TEST(InitializerTest, FailingInitializerReachesTheDefaultHandler) {
  const ScopedErrorHandler guard(webexec::ErrorHandler{});  // empty: the default handler
  testing::internal::CaptureStderr();
  {
    webexec::ThreadPoolExecutor pool(webexec::ThreadPoolOptions{
        .max_workers = 1,
        .thread_name_prefix = {},
        .initializer = [] { throw TestError("no database"); },
    });
    auto f = pool.submit([] { return 1; });
    EXPECT_THROW(f.result(), webexec::BrokenThreadPool);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("webexec: exception in ThreadPoolExecutor initializer: no database"),
            std::string::npos)
      << err;
}

}  // namespace
