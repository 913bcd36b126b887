// shutdown(wait=true) racing four threads that keep submitting: the SIGTERM
// case of a busy service. Every shutdown must return. A lost wake-up shows
// as a worker parked forever and a join that never returns, so a watchdog
// thread turns a trial that makes no progress for kHangLimit into a test
// failure (and exits) instead of letting ctest hang until its timeout.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace {

constexpr int kTrials = 10'000;
constexpr int kSubmitters = 4;
// Submits each thread makes before the shutdown starts (so workers are
// started, busy, then spinning or parking when it comes).
constexpr int kSubmitsBeforeShutdown = 4;
// Rejected submits each thread keeps making after its first ShutdownError:
// they hold the window in which a worker decides whether to exit.
constexpr int kRejectedSubmits = 20;
// No trial takes anywhere near this long; one that does has hung.
constexpr auto kHangLimit = std::chrono::seconds(10);

/// What the main thread is doing, for the watchdog's report.
enum class Stage : int { setting_up, shutting_down, meeting };

/// Fails the test and exits the process if `progress` stops moving for
/// kHangLimit; a hung join cannot be interrupted any other way.
class Watchdog {
 public:
  Watchdog(const std::atomic<int>& progress, const std::atomic<Stage>& stage)
      : progress_(progress), stage_(stage), thread_([this] { watch(); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    stop_.store(true);
    thread_.join();
  }

 private:
  void watch() {
    int last = progress_.load();
    auto last_change = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      // A timer, not synchronisation: it only measures how long nothing moved.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const int now = progress_.load();
      if (now != last) {
        last = now;
        last_change = std::chrono::steady_clock::now();
        continue;
      }
      if (std::chrono::steady_clock::now() - last_change < kHangLimit) continue;
      const char* where = stage_.load() == Stage::shutting_down ? "in shutdown(wait=true)"
                          : stage_.load() == Stage::meeting     ? "meeting the submitters"
                                                                : "setting up";
      ADD_FAILURE() << "trial " << now << " hung " << where << " for " << kHangLimit.count()
                    << " s";
      std::fprintf(stderr, "watchdog: trial %d hung %s\n", now, where);
      std::fflush(stderr);
      std::_Exit(1);  // the hung threads cannot be joined
    }
  }

  const std::atomic<int>& progress_;
  const std::atomic<Stage>& stage_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// A reusable barrier for a fixed number of threads (libstdc++ 12's
/// std::barrier can lose a phase under this load).
class Barrier {
 public:
  explicit Barrier(int count) : count_(count) {}
  void arrive_and_wait() {
    std::unique_lock lock(mutex_);
    const unsigned long long generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  const int count_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;                    // guarded by mutex_
  unsigned long long generation_ = 0;  // guarded by mutex_
};

TEST(ShutdownRaceStressTest, ShutdownReturnsWhileFourThreadsKeepSubmitting) {
  std::atomic<int> trials_done{0};
  std::atomic<Stage> stage{Stage::setting_up};
  Watchdog watchdog(trials_done, stage);

  std::unique_ptr<webexec::ThreadPoolExecutor> pool;
  std::atomic<int> submitted{0};
  std::atomic<int> rejected{0};
  std::atomic<int> ran{0};
  std::atomic<bool> shutting_down{false};
  // Phase 1: the main thread has built the pool; phase 2: every submitter
  // has seen its rejections, so the pool may be destroyed.
  Barrier sync(kSubmitters + 1);

  auto submitter = [&] {
    for (int trial = 0; trial < kTrials; ++trial) {
      sync.arrive_and_wait();
      // A few tasks before the shutdown, so the workers are started and busy.
      for (int i = 0; i < kSubmitsBeforeShutdown; ++i) {
        auto f = pool->submit([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        submitted.fetch_add(1, std::memory_order_release);
      }
      while (!shutting_down.load(std::memory_order_acquire)) std::this_thread::yield();
      int rejections = 0;
      while (rejections < kRejectedSubmits) {
        try {
          auto f = pool->submit([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
          submitted.fetch_add(1, std::memory_order_release);
        } catch (const webexec::ShutdownError&) {
          ++rejections;
        }
      }
      rejected.fetch_add(rejections, std::memory_order_relaxed);
      sync.arrive_and_wait();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(kSubmitters);
  for (int i = 0; i < kSubmitters; ++i) threads.emplace_back(submitter);

  long long total_submitted = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    submitted.store(0);
    shutting_down.store(false);
    pool = std::make_unique<webexec::ThreadPoolExecutor>(2);
    sync.arrive_and_wait();
    // Let the submitters' first tasks go in, then race them (bounded: each
    // makes kSubmitsBeforeShutdown submits and then waits for this flag).
    while (submitted.load(std::memory_order_acquire) < kSubmitters * kSubmitsBeforeShutdown) {
      std::this_thread::yield();
    }
    shutting_down.store(true, std::memory_order_release);
    stage.store(Stage::shutting_down);
    pool->shutdown(true);
    stage.store(Stage::meeting);
    sync.arrive_and_wait();
    stage.store(Stage::setting_up);
    total_submitted += submitted.load();
    pool.reset();
    trials_done.fetch_add(1);
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(trials_done.load(), kTrials);
  // Every accepted task ran: shutdown(wait=true) drains the queue.
  EXPECT_EQ(ran.load(), total_submitted);
  EXPECT_EQ(rejected.load(), kTrials * kSubmitters * kRejectedSubmits);
}

}  // namespace
