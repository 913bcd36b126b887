// The fork server's lifecycle (Step 4a, issue 8), in a host that started it
// on the first line of main(): after a `kill -9` of the fork server the
// pool recovers within a second and later jobs run, also in a host that
// runs many threads (item 4).
//
// Waits on another process's state (a pid that dies, a file it writes) poll
// with a deadline; threads of this process synchronise with latches.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::Contains;
using webexec_test::kResultPatience;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------ jobs

/// `i * i`, after a little simulated work so jobs queue up.
std::int64_t square(std::int64_t i) {
  std::this_thread::sleep_for(1ms);
  return i * i;
}
WEBEXEC_REGISTER_JOB("fork_server.square", square);

// ------------------------------------------------------------------ helpers

/// The fork server's pid as this test sees it: the accessor, checked
/// against the host's only child.
pid_t current_fork_server() {
  const pid_t pid = webexec::process::detail::fork_server_pid();
  const auto children = webexec_test::my_children();
  EXPECT_NE(std::find(children.begin(), children.end(), pid), children.end())
      << "the fork server " << pid << " is not a child of the host";
  return pid;
}

/// Waits (bounded) until the fork server is a live process other than
/// `old`; returns how long that took, or nullopt.
std::optional<Clock::duration> wait_for_new_fork_server(pid_t old, Clock::time_point since,
                                                        Clock::duration patience) {
  const auto deadline = since + patience;
  for (;;) {
    const pid_t now = webexec::process::detail::fork_server_pid();
    if (now > 0 && now != old && !webexec_test::process_gone(now)) return Clock::now() - since;
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(1ms);
  }
}

/// A process executor with `workers` workers.
struct Pool {
  explicit Pool(int workers) {
    app.config().set("EXECUTOR_TYPE", "process");
    app.config().set("EXECUTOR_MAX_WORKERS", workers);
    executor = std::make_unique<webexec::Executor>(app);
  }
  webexec::App app{"fork-server"};
  std::unique_ptr<webexec::Executor> executor;
};

/// Checks that every future succeeds with i*i.
void expect_all_succeed(std::vector<webexec::Future<std::int64_t>>& futures, std::int64_t first,
                        const char* what) {
  for (std::size_t k = 0; k < futures.size(); ++k) {
    const std::int64_t i = first + static_cast<std::int64_t>(k);
    try {
      EXPECT_EQ(futures[k].result(kResultPatience), i * i) << what << " job " << i;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << " job " << i << " failed: " << e.what();
    }
  }
}

/// Kills the fork server with SIGKILL while jobs run, then again while the
/// pool is idle; checks that the recovery is noticed within a second and
/// that every job submitted after each kill succeeds. Jobs in flight at a
/// kill may fail, but only with an error that names the cause.
void kill_fork_server_twice(Pool& pool) {
  auto& executor = *pool.executor;
  // Warm up: workers exist.
  EXPECT_EQ(executor.submit(square, std::int64_t{3}).result(kResultPatience), 9);

  // 1. While jobs run.
  std::vector<webexec::Future<std::int64_t>> in_flight;
  for (std::int64_t i = 0; i < 200; ++i) in_flight.push_back(executor.submit(square, i));
  const pid_t first = current_fork_server();
  ASSERT_GT(first, 0);
  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  const auto noticed = wait_for_new_fork_server(first, killed_at, 5s);
  ASSERT_TRUE(noticed.has_value()) << "no new fork server";
  EXPECT_LT(*noticed, 1s) << "the recovery took " << std::chrono::duration<double>(*noticed).count()
                          << " s";
  // Submitted once the kill took effect (the old fork server is dead, so
  // its workers got their SIGKILL): every one must run.
  std::vector<webexec::Future<std::int64_t>> after;
  for (std::int64_t i = 1000; i < 1100; ++i) after.push_back(executor.submit(square, i));
  int failed = 0;
  for (std::size_t k = 0; k < in_flight.size(); ++k) {
    try {
      EXPECT_EQ(in_flight[k].result(kResultPatience),
                static_cast<std::int64_t>(k) * static_cast<std::int64_t>(k));
    } catch (const webexec::BrokenProcessPool& e) {
      ++failed;
      EXPECT_TRUE(Contains(e.what(), "fork server")) << "an unclear error";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "job " << k << " failed with another error: " << e.what();
    }
  }
  EXPECT_LE(failed, executor.max_workers()) << "only the jobs running at the kill may fail";
  expect_all_succeed(after, 1000, "after the first kill,");

  // 2. While the pool is idle: its workers die with the fork server.
  const pid_t second = current_fork_server();
  ASSERT_GT(second, 0);
  const auto workers = executor.worker_pids();
  const auto killed_idle_at = Clock::now();
  ASSERT_EQ(::kill(second, SIGKILL), 0);
  // Noticed without any job asking for a worker: the pool's dying workers
  // tell it.
  const auto idle_noticed = wait_for_new_fork_server(second, killed_idle_at, 5s);
  ASSERT_TRUE(idle_noticed.has_value()) << "no new fork server";
  EXPECT_LT(*idle_noticed, 1s) << "the recovery took "
                               << std::chrono::duration<double>(*idle_noticed).count() << " s";
  auto next = executor.submit(square, std::int64_t{12});
  EXPECT_EQ(next.result(kResultPatience), 144);
  for (const pid_t pid : workers) {
    // Dead (init reaps them): at most a zombie.
    const auto deadline = Clock::now() + webexec_test::kExitPatience;
    while (!webexec_test::process_gone(pid) && webexec_test::process_state(pid) != 'Z' &&
           Clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_TRUE(webexec_test::process_gone(pid) || webexec_test::process_state(pid) == 'Z')
        << "worker " << pid << " outlived its fork server";
  }
  std::vector<webexec::Future<std::int64_t>> later;
  for (std::int64_t i = 2000; i < 2100; ++i) later.push_back(executor.submit(square, i));
  expect_all_succeed(later, 2000, "after the second kill,");
}

// ------------------------------------------------------------------ item 4

TEST(ForkServerTest, RecoversFromKillNineWhileJobsRunAndWhenIdle) {
  Pool pool(2);
  kill_fork_server_twice(pool);
  pool.executor->shutdown(true);
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

TEST(ForkServerTest, RecoversInAHostThatRunsManyThreads) {
  // Threads that keep malloc's and stdio's locks busy, as a web server's
  // would: forking this host now could copy a held lock into the child.
  std::atomic<bool> stop{false};
  constexpr int kThreads = 24;
  std::latch started(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      started.count_down();
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto block = std::make_unique<char[]>(64 + static_cast<std::size_t>(n % 4096));
        char line[64];
        std::snprintf(line, sizeof line, "thread %d round %llu", t,
                      static_cast<unsigned long long>(n++));
        block[0] = line[0];
        std::this_thread::yield();
      }
    });
  }
  started.wait();
  EXPECT_GT(webexec::process::thread_count(), kThreads);
  {
    Pool pool(2);
    kill_fork_server_twice(pool);
  }
  stop.store(true);
  for (auto& thread : threads) thread.join();
}

TEST(ForkServerTest, TwoPoolsShareOneRecoveredForkServer) {
  Pool a(1);
  Pool b(1);
  EXPECT_EQ(a.executor->submit(square, std::int64_t{2}).result(kResultPatience), 4);
  EXPECT_EQ(b.executor->submit(square, std::int64_t{3}).result(kResultPatience), 9);
  const pid_t old = current_fork_server();
  const auto killed_at = Clock::now();
  std::vector<webexec::Future<std::int64_t>> fa;
  std::vector<webexec::Future<std::int64_t>> fb;
  for (std::int64_t i = 0; i < 50; ++i) {
    fa.push_back(a.executor->submit(square, i));
    fb.push_back(b.executor->submit(square, i));
  }
  ASSERT_EQ(::kill(old, SIGKILL), 0);
  const auto noticed = wait_for_new_fork_server(old, killed_at, 5s);
  ASSERT_TRUE(noticed.has_value());
  EXPECT_LT(*noticed, 1s);
  // Jobs running at the kill may fail, with a clear error.
  for (auto* futures : {&fa, &fb}) {
    for (std::size_t k = 0; k < futures->size(); ++k) {
      try {
        EXPECT_EQ((*futures)[k].result(kResultPatience),
                  static_cast<std::int64_t>(k) * static_cast<std::int64_t>(k));
      } catch (const webexec::BrokenProcessPool& e) {
        EXPECT_TRUE(Contains(e.what(), "fork server"));
      }
    }
  }
  EXPECT_EQ(a.executor->submit(square, std::int64_t{5}).result(kResultPatience), 25);
  EXPECT_EQ(b.executor->submit(square, std::int64_t{6}).result(kResultPatience), 36);
  // Exactly one fork server: the new one.
  EXPECT_EQ(webexec_test::my_children().size(), 1U);
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
