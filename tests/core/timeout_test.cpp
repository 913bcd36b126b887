// Timeout: durations too long for the clock saturate to "forever" instead
// of overflowing into a deadline in the past; zero and negative durations
// still mean "do not wait".
#include "webexec/timeout.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/map_result.hpp"
#include "webexec/thread_pool_executor.hpp"
#include "webexec/wait.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using webexec_test::core::Gate;

/// Upper bound for waits that should end almost at once.
constexpr auto kPatience = 10s;

/// The huge durations of issue 9, each as a Timeout.
std::vector<webexec::Timeout> huge_timeouts() {
  return {std::chrono::nanoseconds::max(), std::chrono::milliseconds::max(),
          std::chrono::hours(24 * 365 * 400), std::chrono::duration<double>(1e30)};
}

/// The scheduler state of thread `tid` of this process ('R', 'S', ...).
char thread_state(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

/// Runs `wait(future)` on this thread while another thread completes the
/// future once this one sleeps in the kernel (so the wait had to block
/// with its deadline). The helper gives up after kPatience.
template <typename Wait>
void complete_while_blocked(webexec::Promise<int>& promise, Wait wait) {
  const auto me = static_cast<pid_t>(::syscall(SYS_gettid));
  std::atomic<bool> waiting{false};
  std::atomic<bool> returned{false};
  std::thread completer([&] {
    const auto until = Clock::now() + kPatience;
    while (!waiting.load() && Clock::now() < until) std::this_thread::yield();
    while (!returned.load() && thread_state(me) != 'S' && Clock::now() < until) {
      std::this_thread::yield();
    }
    promise.set_result(42);
  });
  waiting.store(true);
  wait();
  returned.store(true);
  completer.join();
}

TEST(TimeoutTest, HugeDurationsSaturateToForever) {
  for (const auto& t : huge_timeouts()) {
    EXPECT_FALSE(t.infinite());
    EXPECT_EQ(t.limit(), Clock::duration::max());
    EXPECT_FALSE(t.deadline().has_value()) << "a huge timeout must not become a past deadline";
  }
  EXPECT_EQ(webexec::Timeout(std::chrono::duration<double>(-1e30)).limit(), Clock::duration::min());
}

TEST(TimeoutTest, OrdinaryDurationsConvertExactly) {
  EXPECT_EQ(webexec::Timeout(250ms).limit(), Clock::duration(250ms));
  EXPECT_EQ(webexec::Timeout(std::chrono::hours(24)).limit(), Clock::duration(24h));
  EXPECT_EQ(webexec::Timeout(std::chrono::duration<double>(0.5)).limit(), Clock::duration(500ms));
  const auto before = Clock::now();
  const auto deadline = webexec::Timeout(1h).deadline();
  ASSERT_TRUE(deadline.has_value());
  EXPECT_GE(*deadline, before + 1h);
  EXPECT_LE(*deadline, Clock::now() + 1h);
}

TEST(TimeoutTest, ResultWithAHugeTimeoutWaitsForTheValue) {
  for (const auto& t : huge_timeouts()) {
    webexec::Promise<int> promise;
    const auto f = promise.future();
    int value = 0;
    complete_while_blocked(
        promise, [&] { EXPECT_NO_THROW(value = f.result(t)) << "timed out instead of waiting"; });
    EXPECT_EQ(value, 42);
  }
}

TEST(TimeoutTest, ResultWithEachHugeDurationTypeWaitsForTheValue) {
  // The durations themselves, not pre-built Timeouts: the conversion at the call.
  auto check = [](auto duration) {
    webexec::Promise<int> promise;
    const auto f = promise.future();
    int value = 0;
    complete_while_blocked(promise, [&] {
      EXPECT_NO_THROW(value = f.result(duration)) << "timed out instead of waiting";
    });
    EXPECT_EQ(value, 42);
  };
  check(std::chrono::nanoseconds::max());
  check(std::chrono::milliseconds::max());
  check(std::chrono::hours(24 * 365 * 400));
  check(std::chrono::duration<double>(1e30));
}

TEST(TimeoutTest, WaitAndAsCompletedWithAHugeTimeoutWaitForTheFuture) {
  for (const auto& t : huge_timeouts()) {
    {
      webexec::Promise<int> promise;
      const std::vector<webexec::Future<int>> fs{promise.future()};
      std::size_t done = 0;
      complete_while_blocked(promise, [&] { done = webexec::wait(fs, t).done.size(); });
      EXPECT_EQ(done, 1U);
    }
    {
      webexec::Promise<int> promise;
      const std::vector<webexec::Future<int>> fs{promise.future()};
      int value = 0;
      complete_while_blocked(promise, [&] {
        EXPECT_NO_THROW({
          for (const auto& f : webexec::as_completed(fs, t)) value = f.result();
        });
      });
      EXPECT_EQ(value, 42);
    }
  }
}

TEST(TimeoutTest, MapWithAHugeTimeoutWaitsForTheValue) {
  webexec::ThreadPoolExecutor pool(1);
  for (const auto& t : huge_timeouts()) {
    Gate gate;
    std::latch started(1);
    auto results = pool.map(
        [&started, w = gate.waiter()](int x) {
          started.count_down();
          w.wait();
          return x;
        },
        std::vector{7}, t);
    started.wait();
    std::thread opener([&] { gate.open(); });
    int value = 0;
    EXPECT_NO_THROW({
      for (int v : results) value = v;
    });
    opener.join();
    EXPECT_EQ(value, 7);
  }
}

TEST(TimeoutTest, ZeroAndNegativeDurationsTimeOutAtOnce) {
  webexec::Promise<int> promise;
  const auto f = promise.future();
  EXPECT_THROW(static_cast<void>(f.result(0s)), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(f.result(-1s)), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(f.result(std::chrono::nanoseconds::min())), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(f.result(std::chrono::duration<double>(-1e30))),
               webexec::TimeoutError);
  EXPECT_FALSE(f.wait(std::chrono::milliseconds::min()));
}

}  // namespace
