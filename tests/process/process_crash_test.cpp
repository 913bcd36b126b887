// Crash isolation of EXECUTOR_TYPE=process (Step 3): a worker killed from
// outside, a job that segfaults, aborts, exits, hangs past its time limit,
// or writes garbage to its channel. In every case the job's future fails
// with an error naming the pid and what happened, the other jobs (running
// on the other worker, or queued behind the dead one) are unaffected, a
// replacement worker serves the next job, nothing hangs, and no worker
// process remains, alive or zombie.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// ------------------------------------------------------------------ jobs

/// A normal job: its value and the pid of the worker that computed it. With
/// a `dir`, it first marks job `i` as run there; if it already was, it
/// returns {-1, pid} (a job must not run twice).
std::array<std::int64_t, 2> compute(std::int64_t i, std::string dir) {
  if (!dir.empty()) {
    const std::string marker = dir + "/run-" + std::to_string(i);
    const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return {-1, ::getpid()};
    ::close(fd);
  }
  std::this_thread::sleep_for(3ms);  // simulated work, so jobs spread and queue up
  return {i * i + 1, ::getpid()};
}
WEBEXEC_REGISTER_JOB("crash.compute", compute);

/// Writes raw bytes to the worker's channel to the host.
void write_channel(const std::string& bytes) {
  const int fd = webexec::process::detail::current_worker_fd();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

/// A frame as docs/design.md describes it: length, version 1, kind, slot, id.
std::string frame_header(std::uint64_t length, std::uint8_t kind, std::uint64_t id) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
  out.push_back(1);
  out.push_back(static_cast<char>(kind));
  out.append(2, '\0');
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((id >> (8 * i)) & 0xFF));
  return out;
}

/// Announces its pid in `pid_file`, then misbehaves as `how` says.
int misbehave(std::string pid_file, std::string how) {
  webexec_test::announce_pid(pid_file);
  if (how == "segv") webexec_test::die_by_signal(SIGSEGV);
  if (how == "abort") {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::abort();
  }
  if (how == "exit3") std::exit(3);
  if (how == "garbage-json") {
    // A well-formed result frame whose body is random bytes, not CBOR.
    std::string body = random_bytes(64, 7);
    body[0] = '\xff';  // a CBOR "break" where a value must be
    write_channel(frame_header(12 + body.size(), 5, 1) + body);
  } else if (how == "garbage-huge") {
    // Random bytes after a length no frame may have.
    write_channel(frame_header(0xFFFFFFF0U, 5, 1) + random_bytes(64, 11));
  } else if (how == "stray-id") {
    // A valid result, for a job this worker never got.
    const auto body = nlohmann::json::to_cbor(0);
    write_channel(frame_header(12 + body.size(), 5, 987654321) +
                  std::string(body.begin(), body.end()));
  }
  // "wait", "hang" and the garbage cases: block until killed (bounded, so a
  // bug fails the test instead of hanging it).
  std::this_thread::sleep_for(60s);
  return -1;
}
WEBEXEC_REGISTER_JOB("crash.misbehave", misbehave);

// ------------------------------------------------------------------ scenario

/// One executor with two workers, a misbehaving job among normal ones.
class Scenario {
 public:
  Scenario() {
    app_.config().set("EXECUTOR_TYPE", "process");
    app_.config().set("EXECUTOR_MAX_WORKERS", 2);
    executor_ = std::make_unique<webexec::Executor>(app_);
  }

  webexec::Executor& executor() { return *executor_; }
  std::string pid_file() const { return dir_.file("bad.pid"); }

  /// Submits `count` normal jobs numbered from `first`.
  void submit_normal(int first, int count) {
    for (int i = first; i < first + count; ++i) {
      normal_.emplace_back(i, executor_->submit(compute, std::int64_t{i}, dir_.str()));
    }
  }

  /// Checks every normal job's value and records its worker.
  void check_normal() {
    for (auto& [i, future] : normal_) {
      try {
        const auto out = future.result(kResultPatience);
        EXPECT_NE(out[0], -1) << "job " << i << " ran twice";
        EXPECT_EQ(out[0], std::int64_t{i} * i + 1) << "job " << i;
        seen_.insert(static_cast<pid_t>(out[1]));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "normal job " << i << " failed: " << e.what();
      }
    }
    normal_.clear();
  }

  /// The misbehaving job's error (as E), after checking its type.
  template <typename E, typename F>
  std::string error_of(const F& future) {
    try {
      static_cast<void>(future.result(kResultPatience));
    } catch (const E& e) {
      EXPECT_TRUE(future.done()) << "the wait timed out, the job did not fail";
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "failed with another error: " << e.what();
      return {};
    }
    ADD_FAILURE() << "the misbehaving job did not fail";
    return {};
  }

  /// The pid the misbehaving job announced.
  pid_t bad_pid() {
    const pid_t pid = webexec_test::announced_pid(pid_file());
    if (pid > 0) seen_.insert(pid);
    return pid;
  }

  /// The bad worker is gone and a replacement serves the next jobs.
  void check_healed(pid_t bad) {
    EXPECT_EQ(webexec_test::lingering({bad}), "") << "the dead worker lingers";
    const auto pids = executor_->worker_pids();
    EXPECT_EQ(std::find(pids.begin(), pids.end(), bad), pids.end());
    submit_normal(1000, 6);
    const auto next =
        executor_->submit(compute, std::int64_t{7}, std::string()).result(kResultPatience);
    EXPECT_EQ(next[0], 50);
    EXPECT_NE(next[1], bad);
    seen_.insert(static_cast<pid_t>(next[1]));
    check_normal();
  }

  /// After shutdown every worker ever seen is gone, none a zombie, and the
  /// fork server has no child left.
  void check_no_process_remains() {
    for (const pid_t pid : executor_->worker_pids()) seen_.insert(pid);
    executor_->shutdown(/*wait=*/true);
    EXPECT_TRUE(executor_->worker_pids().empty());
    EXPECT_EQ(webexec_test::lingering(seen_), "");
    EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
  }

 private:
  webexec_test::TempDir dir_;
  webexec::App app_{"crash"};
  std::unique_ptr<webexec::Executor> executor_;
  std::vector<std::pair<int, webexec::Future<std::array<std::int64_t, 2>>>> normal_;
  std::set<pid_t> seen_;
};

/// A job that breaks its own worker (`how`) among normal jobs:
/// BrokenProcessPool naming the pid, `expected` and `also`, everything else
/// unaffected, the worker replaced, no process left.
void expect_isolated_failure(const std::string& how, const std::string& expected,
                             const std::string& also) {
  Scenario s;
  s.submit_normal(0, 10);
  auto bad = s.executor().submit(misbehave, s.pid_file(), how);
  s.submit_normal(10, 20);

  const std::string message = s.error_of<webexec::BrokenProcessPool>(bad);
  const pid_t pid = s.bad_pid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(Contains(message, "worker process " + std::to_string(pid)));
  EXPECT_TRUE(Contains(message, expected));
  EXPECT_TRUE(Contains(message, also));
  s.check_normal();
  s.check_healed(pid);
  s.check_no_process_remains();
}

/// A job that kills its own worker: the error names the job.
void expect_isolated_crash(const std::string& how, const std::string& expected) {
  expect_isolated_failure(how, expected, "crash.misbehave");
}

// ------------------------------------------------------------------ crashes

TEST(ProcessCrashTest, WorkerKilledWithSigkillInTheMiddleOfAJob) {
  Scenario s;
  s.submit_normal(0, 10);
  auto victim = s.executor().submit(misbehave, s.pid_file(), std::string("wait"));
  s.submit_normal(10, 20);

  ASSERT_TRUE(webexec_test::wait_for_file(s.pid_file())) << "the job never started";
  const pid_t pid = s.bad_pid();
  ASSERT_GT(pid, 0);
  const auto pids = s.executor().worker_pids();
  ASSERT_NE(std::find(pids.begin(), pids.end(), pid), pids.end());
  EXPECT_FALSE(victim.done());
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  const std::string message = s.error_of<webexec::BrokenProcessPool>(victim);
  EXPECT_TRUE(Contains(message, "worker process " + std::to_string(pid)));
  EXPECT_TRUE(Contains(message, "killed by signal 9 (SIGKILL)"));
  EXPECT_TRUE(Contains(message, "crash.misbehave"));
  s.check_normal();
  s.check_healed(pid);
  s.check_no_process_remains();
}

TEST(ProcessCrashTest, KillingABusyWorkerRequeuesTheJobsQueuedBehindIt) {
  // One worker: the jobs submitted after the victim wait behind it (some in
  // its socket); they must run on the replacement, not fail with it.
  webexec_test::TempDir dir;
  webexec::App app("requeue");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  auto victim = executor.submit(misbehave, dir.file("victim.pid"), std::string("wait"));
  std::vector<webexec::Future<std::array<std::int64_t, 2>>> behind;
  for (int i = 0; i < 6; ++i)
    behind.push_back(executor.submit(compute, std::int64_t{i}, dir.str()));

  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("victim.pid")));
  const pid_t pid = webexec_test::announced_pid(dir.file("victim.pid"));
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);

  try {
    static_cast<void>(victim.result(kResultPatience));
    ADD_FAILURE() << "the victim did not fail";
  } catch (const webexec::BrokenProcessPool& e) {
    EXPECT_TRUE(Contains(e.what(), std::to_string(pid)));
  }
  std::set<pid_t> pids = {pid};
  for (std::size_t i = 0; i < behind.size(); ++i) {
    const auto out = behind[i].result(kResultPatience);
    EXPECT_NE(out[0], -1) << "job " << i << " ran twice";
    EXPECT_EQ(out[0], static_cast<std::int64_t>(i * i + 1));
    EXPECT_NE(out[1], pid);
    pids.insert(static_cast<pid_t>(out[1]));
  }
  executor.shutdown(/*wait=*/true);
  EXPECT_EQ(webexec_test::lingering(pids), "");
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

TEST(ProcessCrashTest, WorkerKilledWhileIdleFailsNothing) {
  webexec::App app("idle");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  const auto first =
      executor.submit(compute, std::int64_t{1}, std::string()).result(kResultPatience);
  const auto pid = static_cast<pid_t>(first[1]);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(webexec_test::lingering({pid}), "") << "the idle worker was not reaped";

  std::set<pid_t> pids = {pid};
  std::vector<webexec::Future<std::array<std::int64_t, 2>>> next;
  for (int i = 0; i < 5; ++i)
    next.push_back(executor.submit(compute, std::int64_t{i}, std::string()));
  for (std::size_t i = 0; i < next.size(); ++i) {
    const auto out = next[i].result(kResultPatience);
    EXPECT_EQ(out[0], static_cast<std::int64_t>(i * i + 1));
    EXPECT_NE(out[1], pid);
    pids.insert(static_cast<pid_t>(out[1]));
  }
  executor.shutdown(/*wait=*/true);
  EXPECT_EQ(webexec_test::lingering(pids), "");
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

TEST(ProcessCrashTest, JobThatSegfaults) {
  expect_isolated_crash("segv", "killed by signal 11 (SIGSEGV)");
}

TEST(ProcessCrashTest, JobThatAborts) {
  expect_isolated_crash("abort", "killed by signal 6 (SIGABRT)");
}

TEST(ProcessCrashTest, JobThatExits) { expect_isolated_crash("exit3", "exited with code 3"); }

TEST(ProcessCrashTest, JobThatHangsPastItsTimeLimit) {
  Scenario s;
  s.submit_normal(0, 10);
  const auto job = s.executor().job("crash.misbehave", misbehave).with_timeout(2s);
  auto hung = job.submit(s.pid_file(), std::string("hang"));
  s.submit_normal(10, 20);

  const std::string message = s.error_of<webexec::TimeoutError>(hung);
  const pid_t pid = s.bad_pid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(Contains(message, "worker process " + std::to_string(pid)));
  EXPECT_TRUE(Contains(message, "time limit"));
  EXPECT_TRUE(Contains(message, "crash.misbehave"));
  s.check_normal();
  s.check_healed(pid);
  s.check_no_process_remains();
}

TEST(ProcessCrashTest, SeveralCrashesInARowEachFailOnlyTheirJob) {
  Scenario s;
  std::vector<webexec::Future<int>> bad;
  std::vector<std::string> files;
  s.submit_normal(0, 5);
  const char* kinds[] = {"segv", "exit3", "abort", "segv", "exit3", "abort"};
  int n = 0;
  for (const char* how : kinds) {
    files.push_back(s.pid_file() + std::to_string(n++));
    bad.push_back(s.executor().submit(misbehave, files.back(), std::string(how)));
    s.submit_normal(100 * n, 5);
  }
  std::set<pid_t> dead;
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const std::string message = s.error_of<webexec::BrokenProcessPool>(bad[i]);
    const pid_t pid = webexec_test::announced_pid(files[i]);
    EXPECT_TRUE(Contains(message, "worker process " + std::to_string(pid))) << kinds[i];
    dead.insert(pid);
  }
  EXPECT_EQ(dead.size(), bad.size()) << "each crash takes its own worker";
  s.check_normal();
  EXPECT_EQ(webexec_test::lingering(dead), "");
  s.check_no_process_remains();
}

// ------------------------------------------------------------------ garbage on the channel

/// A worker that writes garbage to the host: the host kills it.
void expect_garbage_handled(const std::string& how, const std::string& expected) {
  expect_isolated_failure(how, expected, "killed");
}

TEST(ProcessCrashTest, WorkerWritingAFrameOfRandomBytesIsKilledAndReplaced) {
  expect_garbage_handled("garbage-json", "malformed");
}

TEST(ProcessCrashTest, WorkerWritingAnOversizedFrameIsKilledAndReplaced) {
  expect_garbage_handled("garbage-huge", "over EXECUTOR_MAX_PAYLOAD");
}

TEST(ProcessCrashTest, WorkerAnsweringForAnotherJobIsKilledAndReplaced) {
  expect_garbage_handled("stray-id", "no job it was running");
}

// ------------------------------------------------------------------ shutdown

TEST(ProcessCrashTest, NoZombieRemainsAfterShutdown) {
  Scenario s;
  s.submit_normal(0, 40);
  s.check_normal();
  EXPECT_FALSE(s.executor().worker_pids().empty());
  s.check_no_process_remains();
}

TEST(ProcessCrashTest, NoZombieRemainsWhenTheExecutorIsDestroyedAfterACrash) {
  std::set<pid_t> pids;
  {
    webexec::App app("destroyed");
    app.config().set("EXECUTOR_TYPE", "process");
    app.config().set("EXECUTOR_MAX_WORKERS", 2);
    webexec::Executor executor(app);
    webexec_test::TempDir dir;
    std::vector<webexec::Future<std::array<std::int64_t, 2>>> normal;
    for (int i = 0; i < 10; ++i)
      normal.push_back(executor.submit(compute, std::int64_t{i}, std::string()));
    auto bad = executor.submit(misbehave, dir.file("bad.pid"), std::string("segv"));
    for (auto& f : normal) pids.insert(static_cast<pid_t>(f.result(kResultPatience)[1]));
    EXPECT_THROW(static_cast<void>(bad.result(kResultPatience)), webexec::BrokenProcessPool);
    pids.insert(webexec_test::announced_pid(dir.file("bad.pid")));
    for (const pid_t pid : executor.worker_pids()) pids.insert(pid);
    // No shutdown: the destructor (through the app's teardown) does it.
  }
  EXPECT_EQ(webexec_test::lingering(pids), "");
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
