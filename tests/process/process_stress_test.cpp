// Stress for EXECUTOR_TYPE=process (Step 3): 10,000 jobs across 2 workers,
// about 1% of which kill their own worker (SIGSEGV or SIGKILL, chosen by a
// seeded RNG on the host). Every future resolves, none is lost, no job runs
// twice (each marks its run in a file), the others return the right values,
// each crash fails exactly its own job with BrokenProcessPool, and no worker
// process remains afterwards.
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/process/fork_server.hpp"
#include "webexec/wait.hpp"

#include "process/process_support.hpp"

namespace {

using namespace std::chrono_literals;

enum Fate : int { kNormal = 0, kSegfault = 1, kSigkill = 2 };

/// Marks job `i` as run in `dir` (a job found already marked ran before:
/// it returns {-1, pid} and does nothing else), then returns {f(i), pid}, or
/// kills its own worker as `fate` says.
std::array<std::int64_t, 2> stress_job(std::int64_t i, int fate, std::string dir) {
  const std::string marker = dir + "/" + std::to_string(i);
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return {-1, ::getpid()};
  ::close(fd);
  if (fate == kSegfault) webexec_test::die_by_signal(SIGSEGV);
  if (fate == kSigkill) ::raise(SIGKILL);
  return {i * 7 + 3, ::getpid()};
}
WEBEXEC_REGISTER_JOB("stress.job", stress_job);

TEST(ProcessStressTest, TenThousandJobsAcrossTwoWorkersWithRandomCrashes) {
  constexpr int kJobs = 10000;
  std::mt19937 rng(20240917);  // fixed: the same crashes every run
  std::uniform_int_distribution<int> permille(0, 999);
  std::vector<int> fates(kJobs);
  int crashes = 0;
  for (int& fate : fates) {
    const int r = permille(rng);
    fate = r < 5 ? kSegfault : r < 10 ? kSigkill : kNormal;
    if (fate != kNormal) ++crashes;
  }
  ASSERT_GT(crashes, 50);
  ASSERT_LT(crashes, 200);

  webexec_test::TempDir dir;  // one marker file per job that ran
  webexec::App app("stress");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 2);
  webexec::Executor executor(app);

  std::vector<webexec::Future<std::array<std::int64_t, 2>>> futures;
  futures.reserve(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    futures.push_back(executor.submit(stress_job, std::int64_t{i},
                                      fates[static_cast<std::size_t>(i)], dir.str()));
  }

  // One deadline for all: a lost future fails the test instead of hanging it.
  const auto [done, not_done] = webexec::wait(futures, 100s);
  EXPECT_EQ(not_done.size(), 0U) << "futures never resolved";
  EXPECT_EQ(done.size(), static_cast<std::size_t>(kJobs));

  std::set<pid_t> pids;
  int right = 0;
  int broken = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto& f = futures[static_cast<std::size_t>(i)];
    if (!f.done()) continue;  // counted above
    const bool crash = fates[static_cast<std::size_t>(i)] != kNormal;
    try {
      const auto out = f.result(0s);
      pids.insert(static_cast<pid_t>(out[1]));
      if (out[0] == -1) {
        ADD_FAILURE() << "job " << i << " ran twice";
        continue;
      }
      EXPECT_FALSE(crash) << "job " << i << " should have crashed its worker";
      EXPECT_EQ(out[0], std::int64_t{i} * 7 + 3) << "job " << i;
      if (!crash && out[0] == std::int64_t{i} * 7 + 3) ++right;
    } catch (const webexec::BrokenProcessPool& e) {
      const std::string message = e.what();
      const pid_t pid = webexec_test::pid_in_message(message);
      EXPECT_GT(pid, 0) << message;
      if (pid > 0) pids.insert(pid);
      EXPECT_TRUE(crash) << "job " << i << " failed though it should not: " << message;
      const std::string expected = fates[static_cast<std::size_t>(i)] == kSegfault
                                       ? "killed by signal 11 (SIGSEGV)"
                                       : "killed by signal 9 (SIGKILL)";
      EXPECT_TRUE(webexec_test::Contains(message, expected)) << "job " << i;
      if (crash) ++broken;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "job " << i << " failed with another error: " << e.what();
    }
  }
  EXPECT_EQ(right, kJobs - crashes);
  EXPECT_EQ(broken, crashes);
  EXPECT_GE(pids.size(), static_cast<std::size_t>(crashes)) << "each crash takes its own worker";

  for (const pid_t pid : executor.worker_pids()) pids.insert(pid);
  executor.shutdown(/*wait=*/true);
  EXPECT_EQ(webexec_test::lingering(pids), "");
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
