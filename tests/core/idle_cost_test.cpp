// Idle workers park instead of spinning: an idle pool costs (almost) no CPU.
#include <sys/resource.h>

#include <chrono>
#include <latch>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/future.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace {

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

TEST(IdleCostTest, IdlePoolOfFourThreadsUsesUnderFivePercentOfACore) {
  webexec::ThreadPoolExecutor pool(4);
  // Start all four workers: each task blocks until all four are running.
  std::latch all_running(4);
  std::vector<webexec::Future<void>> futures;
  for (int i = 0; i < 4; ++i)
    futures.push_back(pool.submit([&] { all_running.arrive_and_wait(); }));
  for (auto& f : futures) f.result();
  ASSERT_EQ(pool.thread_count(), 4U);

  // The measurement window itself, not a synchronisation: one idle second.
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu = process_cpu_seconds() - cpu_start;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

  EXPECT_LT(cpu / wall, 0.05) << "idle pool used " << cpu << " s of CPU in " << wall << " s";
  // And the pool still works after parking.
  EXPECT_EQ(pool.submit([] { return 7; }).result(), 7);
}

}  // namespace
