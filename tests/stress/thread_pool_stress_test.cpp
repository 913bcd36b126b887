// One million tasks with random cancels, done callbacks that submit more
// work, and a shutdown racing the submitters. Afterwards every future must
// be done, every callback must have run exactly once, and no task may have
// run once cancel() returned true for it.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace {

constexpr std::size_t kTasks = 1'000'000;
constexpr std::size_t kSubmitters = 2;
constexpr std::size_t kPerSubmitter = kTasks / kSubmitters;
constexpr std::size_t kFollowUpEvery = 8;  // every 8th callback submits more work

struct Slot {
  webexec::Future<void> future;
  webexec::Future<void> follow_up;
  std::atomic<int> ran{0};
  std::atomic<int> callbacks{0};
  std::atomic<int> follow_up_ran{0};
  std::atomic<bool> cancel_returned_true{false};
};

TEST(ThreadPoolStressTest, MillionTasksWithCancelsCallbacksAndRacingShutdown) {
  auto slots = std::make_unique<Slot[]>(kTasks);
  webexec::ThreadPoolExecutor pool(4);

  std::atomic<std::size_t> published[kSubmitters] = {};
  std::atomic<std::size_t> submitted{0};
  std::atomic<std::size_t> rejected{0};
  std::atomic<std::size_t> follow_ups_rejected{0};
  std::atomic<bool> submitters_done{false};
  std::latch start(kSubmitters + 2);

  auto submitter = [&](std::size_t which) {
    start.arrive_and_wait();
    for (std::size_t k = 0; k < kPerSubmitter; ++k) {
      const std::size_t i = which * kPerSubmitter + k;
      Slot& slot = slots[i];
      try {
        slot.future = pool.submit([&slot] { slot.ran.fetch_add(1); });
      } catch (const webexec::ShutdownError&) {
        rejected.fetch_add(1);
        continue;
      }
      slot.future.add_done_callback([&pool, &slot, &follow_ups_rejected, i](const auto&) {
        slot.callbacks.fetch_add(1);
        if (i % kFollowUpEvery != 0) return;
        try {
          slot.follow_up = pool.submit([&slot] { slot.follow_up_ran.fetch_add(1); });
        } catch (const webexec::ShutdownError&) {
          follow_ups_rejected.fetch_add(1);
        }
      });
      published[which].store(k + 1, std::memory_order_release);
      submitted.fetch_add(1);
    }
  };

  auto canceller = [&] {
    start.arrive_and_wait();
    std::mt19937_64 rng(12345);
    while (!submitters_done.load()) {
      const std::size_t which = rng() % kSubmitters;
      const std::size_t n = published[which].load(std::memory_order_acquire);
      if (n == 0) continue;
      Slot& slot = slots[which * kPerSubmitter + rng() % n];
      if (!slot.future.valid()) continue;
      if (slot.future.cancel()) slot.cancel_returned_true.store(true);
    }
  };

  auto shutter = [&] {
    start.arrive_and_wait();
    while (submitted.load() < kTasks * 7 / 10) std::this_thread::yield();
    pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  };

  std::vector<std::thread> threads;
  for (std::size_t s = 0; s < kSubmitters; ++s) threads.emplace_back(submitter, s);
  threads.emplace_back(canceller);
  threads.emplace_back(shutter);
  for (std::size_t s = 0; s < kSubmitters; ++s) threads[s].join();
  submitters_done.store(true);
  for (std::size_t t = kSubmitters; t < threads.size(); ++t) threads[t].join();
  pool.shutdown(/*wait=*/true);

  std::size_t created = 0;
  std::size_t cancelled = 0;
  std::size_t ran = 0;
  std::size_t follow_ups = 0;
  for (std::size_t i = 0; i < kTasks; ++i) {
    Slot& slot = slots[i];
    if (!slot.future.valid()) continue;
    ++created;
    ASSERT_TRUE(slot.future.done()) << "task " << i << " is " << to_string(slot.future.state());
    ASSERT_EQ(slot.callbacks.load(), 1) << "callback of task " << i;
    ASSERT_LE(slot.ran.load(), 1) << "task " << i;
    // ran counts every run, before or after the cancel, so this also proves
    // that no task started once cancel() had returned true for it.
    if (slot.cancel_returned_true.load()) {
      ASSERT_TRUE(slot.future.cancelled()) << "task " << i;
      ASSERT_EQ(slot.ran.load(), 0) << "task " << i << " ran although cancel() returned true";
    }
    if (slot.future.cancelled()) {
      ++cancelled;
      ASSERT_EQ(slot.ran.load(), 0) << "cancelled task " << i << " ran";
    } else {
      ++ran;
      ASSERT_EQ(slot.ran.load(), 1) << "finished task " << i;
    }
    if (slot.follow_up.valid()) {
      ++follow_ups;
      ASSERT_TRUE(slot.follow_up.done()) << "follow-up of task " << i;
      ASSERT_EQ(slot.follow_up_ran.load(), slot.follow_up.cancelled() ? 0 : 1);
    }
  }
  EXPECT_EQ(created + rejected.load(), kTasks);
  EXPECT_GE(created, kTasks * 7 / 10);
  EXPECT_GT(cancelled, 0U);
  EXPECT_GT(ran, 0U);
  EXPECT_GT(follow_ups, 0U);
  std::printf("created %zu, rejected %zu, ran %zu, cancelled %zu, follow-ups %zu (+%zu rejected)\n",
              created, rejected.load(), ran, cancelled, follow_ups, follow_ups_rejected.load());
}

}  // namespace
