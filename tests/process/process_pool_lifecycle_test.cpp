// Lifecycle edges of a process pool (Step 4a, issue 8): a process a job
// forked dies with its worker, whether the worker is killed or the host
// shuts the pool down (item 7); cancel() returning true means the job never
// ran, over thousands of trials at the moment the job starts (item 8); a
// process executor destroyed from its own done callback does not abort, and
// two threads in shutdown(wait=true) both return (item 11).
//
// Waits on another process's state (a pid, a file it wrote) poll with a
// deadline; threads of this process synchronise with promises and latches.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <memory>
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

/// Forks a child that sleeps (bounded), and returns the child's pid.
int start_sleeper() {
  const pid_t child = ::fork();
  if (child == 0) {
    const timespec nap{30, 0};
    ::nanosleep(&nap, nullptr);
    ::_exit(0);
  }
  return static_cast<int>(child);
}
WEBEXEC_REGISTER_JOB("lifecycle.start_sleeper", start_sleeper);

/// Starts a sleeping child, announces the child's pid in `pid_file`, then
/// blocks (bounded) until killed.
int start_sleeper_and_block(std::string pid_file) {
  const int child = start_sleeper();
  webexec_test::write_file_atomically(pid_file, std::to_string(child));
  std::this_thread::sleep_for(60s);
  return -1;
}
WEBEXEC_REGISTER_JOB("lifecycle.start_sleeper_and_block", start_sleeper_and_block);

/// Marks trial `i` as run in `dir` (after `pause_us`), returns `i`.
std::int64_t mark(std::int64_t i, std::string dir, std::int64_t pause_us) {
  if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  if (!dir.empty()) {
    const std::string marker = dir + "/run-" + std::to_string(i);
    const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
  return i;
}
WEBEXEC_REGISTER_JOB("lifecycle.mark", mark);

/// Waits for `go_file`, returns 7.
int wait_for_go(std::string go_file) {
  return webexec_test::worker_wait_for_file(go_file, 60s) ? 7 : -1;
}
WEBEXEC_REGISTER_JOB("lifecycle.wait_for_go", wait_for_go);

// ------------------------------------------------------------------ helpers

struct Pool {
  explicit Pool(int workers) {
    app.config().set("EXECUTOR_TYPE", "process");
    app.config().set("EXECUTOR_MAX_WORKERS", workers);
    executor = std::make_unique<webexec::Executor>(app);
  }
  webexec::App app{"lifecycle"};
  std::unique_ptr<webexec::Executor> executor;
};

/// Waits (bounded) until `pid` is gone, reaping it if it became this
/// process's child (the test makes itself a subreaper).
bool wait_gone(pid_t pid, Clock::duration patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    ::waitpid(pid, nullptr, WNOHANG);
    if (webexec_test::process_gone(pid)) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

/// Makes this process the reaper of orphaned descendants (so a job's child
/// whose worker died can be reaped and seen gone).
void become_subreaper() { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }

// ------------------------------------------------------------------ item 7

TEST(ProcessPoolLifecycleTest, KillingAWorkerKillsWhatItsJobStarted) {
  become_subreaper();
  webexec_test::TempDir dir;
  Pool pool(1);
  const std::string pid_file = dir.file("sleeper.pid");
  const auto job = pool.executor->job("lifecycle.start_sleeper_and_block", start_sleeper_and_block)
                       .with_timeout(500ms);
  auto future = job.submit(pid_file);
  ASSERT_TRUE(webexec_test::wait_for_file(pid_file));
  const pid_t sleeper = webexec_test::announced_pid(pid_file);
  ASSERT_GT(sleeper, 0);
  // The time limit kills the worker; its child goes with it (and does not
  // keep the worker's socket open either).
  EXPECT_THROW(static_cast<void>(future.result(kResultPatience)), webexec::TimeoutError);
  const bool gone = wait_gone(sleeper, webexec_test::kExitPatience);
  EXPECT_TRUE(gone) << "the job's child " << sleeper << " outlived its killed worker";
  if (!gone) ::kill(sleeper, SIGKILL);
  EXPECT_EQ(pool.executor->submit(start_sleeper).result(kResultPatience) > 0, true);
}

TEST(ProcessPoolLifecycleTest, ShuttingDownKillsWhatAJobLeftBehind) {
  become_subreaper();
  Pool pool(1);
  const int sleeper = pool.executor->submit(start_sleeper).result(kResultPatience);
  ASSERT_GT(sleeper, 0);
  EXPECT_FALSE(webexec_test::process_gone(sleeper));
  pool.executor->shutdown(/*wait=*/true);
  const bool gone = wait_gone(sleeper, webexec_test::kExitPatience);
  EXPECT_TRUE(gone) << "the job's child " << sleeper << " outlived the pool";
  if (!gone) ::kill(sleeper, SIGKILL);
}

// ------------------------------------------------------------------ item 8

TEST(ProcessPoolLifecycleTest, CancelReturningTrueMeansTheJobNeverRan) {
  webexec_test::TempDir dir;
  Pool pool(1);
  auto& executor = *pool.executor;
  constexpr int kTrials = 2000;
  const auto deadline = Clock::now() + 40s;
  std::vector<std::int64_t> cancelled;
  int trials = 0;
  for (std::int64_t i = 0; i < kTrials && Clock::now() < deadline; ++i) {
    ++trials;
    const std::string marker = dir.file("run-" + std::to_string(i));
    // `ahead` occupies the worker; `target` waits behind it in the
    // worker's socket. When `ahead` completes, its callback holds the
    // dispatcher until the worker has claimed `target` (its marker exists)
    // and this thread is busy cancelling it; then the dispatcher handles
    // the worker's "started". Every cancel() from then on must fail.
    struct Trial {
      std::atomic<bool> go{false};
      std::atomic<int> attempts{0};
      std::atomic<bool> callback_done{false};
    };
    auto trial = std::make_shared<Trial>();
    auto ahead = executor.submit(mark, -1 - i, std::string(), std::int64_t{2000});
    auto target = executor.submit(mark, i, dir.str(), std::int64_t{200});
    ahead.add_done_callback(
        [trial, marker, me = std::this_thread::get_id()](const webexec::Future<std::int64_t>&) {
          if (std::this_thread::get_id() == me) {  // `ahead` was already done: nothing to hold
            trial->go.store(true);
            trial->callback_done.store(true);
            return;
          }
          const auto until = Clock::now() + 20ms;
          while (!webexec_test::file_exists(marker) && Clock::now() < until)
            std::this_thread::yield();
          trial->go.store(true);
          while (trial->attempts.load() < 200 && Clock::now() < until + 20ms) {
            std::this_thread::yield();
          }
          trial->callback_done.store(true);
        });
    const auto spin_deadline = Clock::now() + 10s;
    while (!trial->go.load() && Clock::now() < spin_deadline) std::this_thread::yield();
    bool settled = false;
    while (!settled && Clock::now() < spin_deadline) {
      for (int k = 0; k < 64; ++k) {
        trial->attempts.fetch_add(1);
        if (target.cancel()) {
          cancelled.push_back(i);
          settled = true;
          break;
        }
      }
      settled = settled || target.running() || target.done();
    }
    while (!trial->callback_done.load() && Clock::now() < spin_deadline) {
      std::this_thread::yield();
    }
  }
  executor.shutdown(/*wait=*/true);
  int ran_anyway = 0;
  for (const std::int64_t i : cancelled) {
    if (webexec_test::file_exists(dir.file("run-" + std::to_string(i)))) ++ran_anyway;
  }
  EXPECT_EQ(ran_anyway, 0) << ran_anyway << " of " << cancelled.size()
                           << " jobs that cancel() cancelled ran (" << trials << " trials)";
}

// ------------------------------------------------------------------ item 11

TEST(ProcessPoolLifecycleTest, DestroyingTheExecutorFromItsOwnDoneCallbackDoesNotAbort) {
  webexec_test::TempDir dir;
  auto pool = std::make_unique<Pool>(1);
  auto first = pool->executor->submit(mark, std::int64_t{1}, std::string(), std::int64_t{0});
  // Queued behind: the pool finishes it after its executor is gone.
  auto second = pool->executor->submit(mark, std::int64_t{2}, dir.str(), std::int64_t{20000});
  std::promise<void> destroyed;
  first.add_done_callback([&](const webexec::Future<std::int64_t>&) {
    pool->executor.reset();  // on the pool's own dispatcher thread
    destroyed.set_value();
  });
  ASSERT_EQ(destroyed.get_future().wait_for(kResultPatience), std::future_status::ready);
  EXPECT_EQ(first.result(0s), 1);
  EXPECT_EQ(second.result(kResultPatience), 2);
  EXPECT_TRUE(webexec_test::file_exists(dir.file("run-2")));
}

TEST(ProcessPoolLifecycleTest, TwoThreadsInShutdownWaitBothReturn) {
  webexec_test::TempDir dir;
  Pool pool(1);
  const std::string go = dir.file("go");
  auto running = pool.executor->submit(wait_for_go, go);
  std::latch both_called(2);
  std::vector<std::future<void>> returned;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    auto done = std::make_shared<std::promise<void>>();
    returned.push_back(done->get_future());
    threads.emplace_back([&, done] {
      both_called.count_down();
      pool.executor->shutdown(/*wait=*/true);
      done->set_value();
    });
  }
  both_called.wait();
  webexec_test::write_file_atomically(go, "go");
  bool all_returned = true;
  for (auto& r : returned) {
    const bool ok = r.wait_for(kResultPatience) == std::future_status::ready;
    EXPECT_TRUE(ok) << "a shutdown(wait=true) hangs";
    all_returned = all_returned && ok;
  }
  EXPECT_EQ(running.result(0s), 7) << "shutdown returned before the job finished";
  if (!all_returned) {
    for (auto& thread : threads) thread.detach();
    std::_Exit(1);  // a hung thread cannot be joined
  }
  for (auto& thread : threads) thread.join();
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
