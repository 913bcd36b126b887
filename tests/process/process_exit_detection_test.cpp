// How the host notices that a worker process died (Step 4a, issue 8 item 7),
// on the test's main thread and the pool's dispatcher thread: without
// waiting for EOF on the worker's socket, which a process the job forked
// inherits and may keep open long after the worker is gone; and that what
// the job started in the worker's process group dies with it. Also the bound
// on requeueing: a job whose workers keep dying before they start it fails
// after 3 of them instead of being requeued forever.
//
// Waits poll another process's state (a file it wrote, its /proc entry, a
// waitpid) with a deadline; nothing here sleeps to synchronise.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
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
using Clock = std::chrono::steady_clock;
using webexec_test::Contains;
using webexec_test::kResultPatience;

// ------------------------------------------------------------------ jobs

/// Forks a child that sleeps 30 s holding every descriptor the worker has
/// (its socket to the host among them), in the worker's process group or,
/// with `new_group`, in a group of its own. Announces the child's pid in
/// `child_file` and the worker's in `pid_file`, then blocks until killed.
int fork_a_sleeper(std::string pid_file, std::string child_file, bool new_group) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    // Only system calls from here: no exec, so every descriptor stays open.
    if (new_group) ::setpgid(0, 0);
    for (int i = 0; i < 30; ++i) ::sleep(1);
    ::_exit(0);
  }
  if (new_group) ::setpgid(child, child);  // also here, so it holds before the announcement
  webexec_test::write_file_atomically(child_file, std::to_string(child));
  webexec_test::announce_pid(pid_file);
  std::this_thread::sleep_for(60s);
  return -1;
}
WEBEXEC_REGISTER_JOB("exit_detection.fork_a_sleeper", fork_a_sleeper);

int worker_pid() { return static_cast<int>(::getpid()); }
WEBEXEC_REGISTER_JOB("exit_detection.worker_pid", worker_pid);

/// Where the parked worker says it is parked (set by arm_worker, read by
/// the signal handler, which may not build strings).
std::array<char, 4096> parked_path{};

/// The SIGUSR1 handler arm_worker installs. It never returns: the worker's
/// main loop stays interrupted, so no job frame is ever read. It announces
/// that it is parked, waits (bounded) until the next job frame arrives on
/// the socket, and kills the worker before anything could start it.
extern "C" void park_until_next_job(int /*sig*/) {
  const int fd = ::open(parked_path.data(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  pollfd channel{webexec::process::detail::current_worker_fd(), POLLIN, 0};
  static_cast<void>(::poll(&channel, 1, 60'000));
  ::kill(::getpid(), SIGKILL);
}

/// Announces itself in `dir`/armed-<pid>, waits for `dir`/go (so the three
/// arm jobs of a test run in three workers), installs park_until_next_job
/// for SIGUSR1 and returns its pid. The test then sends SIGUSR1 while the
/// worker is idle.
int arm_worker(std::string dir) {
  const std::string pid = std::to_string(::getpid());
  const std::string parked = dir + "/parked-" + pid;
  if (parked.size() >= parked_path.size()) return -1;
  std::copy(parked.begin(), parked.end(), parked_path.begin());
  parked_path[parked.size()] = '\0';
  struct sigaction action {};
  action.sa_handler = park_until_next_job;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGUSR1, &action, nullptr) != 0) return -1;
  webexec_test::write_file_atomically(dir + "/armed-" + pid, pid);
  if (!webexec_test::worker_wait_for_file(dir + "/go", 60s)) return -1;
  return ::getpid();
}
WEBEXEC_REGISTER_JOB("exit_detection.arm_worker", arm_worker);

/// Must never run in the loss test: marks `dir`/ran.
int must_not_run(std::string dir) {
  webexec_test::write_file_atomically(dir + "/ran", "ran");
  return 1;
}
WEBEXEC_REGISTER_JOB("exit_detection.must_not_run", must_not_run);

// ------------------------------------------------------------------ helpers

/// Orphans (a job's child whose worker died) come to this process while it
/// lives, so it can tell exactly when they exit (reaping them).
class SubreaperScope {
 public:
  SubreaperScope() {
    int previous = 0;
    ::prctl(PR_GET_CHILD_SUBREAPER, &previous);
    previous_ = static_cast<unsigned long>(previous);
    ok_ = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  }
  SubreaperScope(const SubreaperScope&) = delete;
  SubreaperScope& operator=(const SubreaperScope&) = delete;
  ~SubreaperScope() { ::prctl(PR_SET_CHILD_SUBREAPER, previous_); }
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  unsigned long previous_ = 0;
  bool ok_ = false;
};

/// Waits (bounded) until `pid` has exited: reaped here if it was reparented
/// to this process, or gone otherwise. True if it did.
bool wait_gone(pid_t pid, Clock::duration patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    const pid_t reaped = ::waitpid(pid, nullptr, WNOHANG);
    if (reaped == pid || webexec_test::process_gone(pid)) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
}

/// Kills `pid` if it still runs and reaps it if it is ours.
void kill_and_reap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  static_cast<void>(wait_gone(pid, webexec_test::kExitPatience));
}

/// How many files in `dir` start with `prefix`.
int count_files(const std::string& dir, const std::string& prefix) {
  int n = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.find(".tmp") == std::string::npos) ++n;
  }
  return n;
}

/// A worker runs a job that forked a sleeper holding the worker's socket;
/// the worker alone is killed with SIGKILL. The job fails with "worker
/// process <pid> died" within 1 s, not when the sleeper exits; the sleeper
/// dies with the worker's process group unless it left it (`new_group`).
void expect_death_noticed_at_once(bool new_group) {
  const SubreaperScope subreaper;
  ASSERT_TRUE(subreaper.ok());
  webexec_test::TempDir dir;
  webexec::App app("exit-detection");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  auto victim =
      executor.submit(fork_a_sleeper, dir.file("worker.pid"), dir.file("child.pid"), new_group);
  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("worker.pid"))) << "the job never started";
  const pid_t worker = webexec_test::announced_pid(dir.file("worker.pid"));
  const pid_t child = webexec_test::announced_pid(dir.file("child.pid"));
  ASSERT_GT(worker, 0);
  ASSERT_GT(child, 0);
  ASSERT_FALSE(webexec_test::process_gone(child));
  ASSERT_EQ(::getpgid(child), new_group ? child : worker);

  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(worker, SIGKILL), 0);  // the worker only, not its group
  std::string message;
  try {
    static_cast<void>(victim.result(5s));
    ADD_FAILURE() << "the job did not fail";
  } catch (const webexec::BrokenProcessPool& e) {
    message = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "no BrokenProcessPool within 5 s (the sleeper holds the socket 30 s): "
                  << e.what();
  }
  const auto noticed_after = Clock::now() - killed_at;
  EXPECT_LT(noticed_after, 1s) << "the death was noticed after "
                               << std::chrono::duration<double>(noticed_after).count() << " s";
  EXPECT_TRUE(Contains(message, "worker process " + std::to_string(worker) + " died"));
  EXPECT_TRUE(Contains(message, "killed by signal 9 (SIGKILL)"));
  EXPECT_TRUE(Contains(message, "exit_detection.fork_a_sleeper"));

  if (new_group) {
    // It left the worker's group: nothing of webexec knows it. Clean up.
    kill_and_reap(child);
  } else {
    EXPECT_TRUE(wait_gone(child, webexec_test::kExitPatience))
        << "the job's child " << child << " outlived its worker's process group";
    kill_and_reap(child);
  }
  // The pool goes on with a new worker.
  const int next = executor.submit(worker_pid).result(kResultPatience);
  EXPECT_GT(next, 0);
  EXPECT_NE(next, worker);
  executor.shutdown(/*wait=*/true);
  EXPECT_EQ(webexec_test::lingering({worker, static_cast<pid_t>(next)}), "");
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

// ------------------------------------------------------------------ tests

TEST(ProcessExitDetectionTest, WorkerDeathIsNoticedWhileAJobsChildHoldsItsSocket) {
  expect_death_noticed_at_once(/*new_group=*/false);
}

TEST(ProcessExitDetectionTest, WorkerDeathIsNoticedWhileAChildInAnotherGroupHoldsItsSocket) {
  expect_death_noticed_at_once(/*new_group=*/true);
}

TEST(ProcessExitDetectionTest, AJobWhoseWorkersDieBeforeStartingItFailsAfterThree) {
  // Three workers, each parked so that it dies, unread, as soon as a job
  // frame reaches it; the job goes to one after the other (an idle worker
  // is preferred to a new one) and must fail after the third instead of
  // being requeued to a fourth.
  webexec_test::TempDir dir;
  webexec::App app("losses");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 3);
  webexec::Executor executor(app);
  std::vector<webexec::Future<int>> arms;
  for (int i = 0; i < 3; ++i) arms.push_back(executor.submit(arm_worker, dir.str()));
  const auto deadline = Clock::now() + kResultPatience;
  while (count_files(dir.str(), "armed-") < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_EQ(count_files(dir.str(), "armed-"), 3) << "the arm jobs did not run in three workers";
  webexec_test::write_file_atomically(dir.file("go"), "go");
  std::set<pid_t> parked;
  for (auto& arm : arms) parked.insert(static_cast<pid_t>(arm.result(kResultPatience)));
  ASSERT_EQ(parked.size(), 3U);
  for (const pid_t pid : parked) {
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(pid, SIGUSR1), 0);
    ASSERT_TRUE(webexec_test::wait_for_file(dir.file("parked-" + std::to_string(pid))))
        << "worker " << pid << " did not park";
  }

  auto doomed = executor.submit(must_not_run, dir.str());
  std::string message;
  try {
    static_cast<void>(doomed.result(kResultPatience));
    ADD_FAILURE() << "the job did not fail";
  } catch (const webexec::BrokenProcessPool& e) {
    message = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "failed with another error: " << e.what();
  }
  EXPECT_TRUE(Contains(message, "job 'exit_detection.must_not_run' was next in 3 worker"));
  EXPECT_TRUE(Contains(message, "not retried again"));
  EXPECT_FALSE(webexec_test::file_exists(dir.file("ran"))) << "the job ran";
  EXPECT_EQ(webexec_test::lingering(parked), "");

  // The pool itself is fine: the next job runs in a new worker.
  const int next = executor.submit(worker_pid).result(kResultPatience);
  EXPECT_EQ(parked.count(static_cast<pid_t>(next)), 0U);
  executor.shutdown(/*wait=*/true);
  EXPECT_EQ(webexec_test::fork_server_leftovers(), "");
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
