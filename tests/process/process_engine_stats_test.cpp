// EngineStats of the process engine (Executor::stats() with
// EXECUTOR_TYPE=process): submitted, queued, running, finished by state, and
// restarts and redeliveries after a worker is killed with SIGKILL. The
// running gauge is stored by the pool's dispatcher thread once per turn, so
// the host polls it with a deadline, as it polls the files that worker
// processes write.
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/engine_stats.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::kResultPatience;

/// Announces its pid in `dir`/pid, then waits for `dir`/go.
std::int64_t hold(std::string dir) {
  webexec_test::announce_pid(dir + "/pid");
  webexec_test::worker_wait_for_file(dir + "/go");
  return 1;
}
WEBEXEC_REGISTER_JOB("stats.hold", hold);

std::int64_t square(std::int64_t x) { return x * x; }
WEBEXEC_REGISTER_JOB("stats.square", square);

std::int64_t fails(std::int64_t /*x*/) { throw std::runtime_error("fails on purpose"); }
WEBEXEC_REGISTER_JOB("stats.fails", fails);

/// Polls `pred` on the executor's stats until it holds or 30 s pass.
bool eventually(const webexec::Executor& executor,
                const std::function<bool(const webexec::EngineStats&)>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!pred(executor.stats())) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(ProcessEngineStatsTest, CountsEveryStateExactly) {
  webexec_test::TempDir dir;
  webexec::App app("stats");
  webexec_test::use_processes(app, 1);
  webexec::Executor executor(app);
  EXPECT_EQ(executor.stats().submitted, 0U);

  auto held = executor.submit(hold, dir.str());
  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("pid")));
  EXPECT_TRUE(eventually(executor, [](const auto& s) { return s.running == 1; }));
  auto ok = executor.submit(square, std::int64_t{3});
  auto bad = executor.submit(fails, std::int64_t{1});
  auto cancelled = executor.submit(square, std::int64_t{4});
  ASSERT_TRUE(cancelled.cancel());
  webexec::EngineStats s = executor.stats();
  EXPECT_EQ(s.submitted, 4U);
  EXPECT_EQ(s.running, 1U);
  EXPECT_EQ(s.succeeded + s.failed, 0U);

  webexec_test::write_file_atomically(dir.file("go"), "");
  EXPECT_EQ(held.result(kResultPatience), 1);
  EXPECT_EQ(ok.result(kResultPatience), 9);
  EXPECT_THROW(static_cast<void>(bad.result(kResultPatience)), webexec::RemoteTaskError);
  executor.shutdown(/*wait=*/true);  // every job has left the pool

  s = executor.stats();
  EXPECT_EQ(s.submitted, 4U);
  EXPECT_EQ(s.succeeded, 2U);
  EXPECT_EQ(s.failed, 1U);
  EXPECT_EQ(s.cancelled, 1U);
  EXPECT_EQ(s.queued, 0U);
  EXPECT_EQ(s.running, 0U);
  EXPECT_EQ(s.restarts, 0U);
  EXPECT_EQ(s.redeliveries, 0U);
  EXPECT_EQ(s.dead_lettered, 0U);
}

TEST(ProcessEngineStatsTest, AWorkerKilledWithSigkillCountsARestart) {
  webexec_test::TempDir dir;
  webexec::App app("stats");
  webexec_test::use_processes(app, 1);
  webexec::Executor executor(app);

  auto held = executor.submit(hold, dir.str());
  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("pid")));
  const pid_t victim = webexec_test::announced_pid(dir.file("pid"));
  ASSERT_GT(victim, 0);
  // Queued behind it (in the pool, or already in the worker's socket).
  auto next = executor.submit(square, std::int64_t{5});
  auto after = executor.submit(square, std::int64_t{6});
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_THROW(static_cast<void>(held.result(kResultPatience)), webexec::BrokenProcessPool);
  EXPECT_EQ(next.result(kResultPatience), 25);
  EXPECT_EQ(after.result(kResultPatience), 36);

  // A job's outcome is counted when it leaves the pool, just after its
  // future completes (on the dispatcher thread).
  EXPECT_TRUE(eventually(executor, [](const auto& st) { return st.succeeded == 2; }));
  webexec::EngineStats s = executor.stats();
  EXPECT_EQ(s.restarts, 1U);
  // Only jobs that were waiting in the dead worker's socket are handed on.
  EXPECT_LE(s.redeliveries, 2U);
  EXPECT_EQ(s.dead_lettered, 0U);
  EXPECT_EQ(s.submitted, 3U);
  EXPECT_EQ(s.failed, 1U);
  EXPECT_EQ(s.succeeded, 2U);

  // An idle worker killed from outside is a restart too, once noticed.
  const auto pids = executor.worker_pids();
  ASSERT_EQ(pids.size(), 1U);
  ASSERT_EQ(::kill(pids.front(), SIGKILL), 0);
  EXPECT_TRUE(eventually(executor, [](const auto& st) { return st.restarts == 2; }));
  EXPECT_EQ(executor.submit(square, std::int64_t{7}).result(kResultPatience), 49);

  executor.shutdown(/*wait=*/true);
  s = executor.stats();
  EXPECT_EQ(s.restarts, 2U);  // stopping the workers at shutdown is no restart
  EXPECT_EQ(s.submitted, 4U);
  EXPECT_EQ(s.succeeded, 3U);
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
