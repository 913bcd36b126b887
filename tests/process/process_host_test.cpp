// Hosts as a terminal or a service manager treats them (Step 4a, issue 8):
// SIGINT and SIGTERM sent to the whole process group, or to every process
// of the service, leave the fork server and the workers to the host (item
// 5); output the host buffered before the fork server started is printed
// once, not again by every worker (item 10); a process a job started does
// not outlive a host that exits (item 7).
//
// The hosts are this executable started again in "child host" mode, whose
// main() starts the fork server itself; this file's test main() does not.
// Waits poll another process's state (a pipe, a pid) with a deadline.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// ------------------------------------------------------------------ jobs

/// Announces its pid in `pid_file`, waits for `go_file`, returns 42.
int wait_for_go(std::string pid_file, std::string go_file) {
  webexec_test::announce_pid(pid_file);
  return webexec_test::worker_wait_for_file(go_file, 60s) ? 42 : -1;
}
WEBEXEC_REGISTER_JOB("host.wait_for_go", wait_for_go);

int add(int a, int b) { return a + b; }
WEBEXEC_REGISTER_JOB("host.add", add);

/// Prints one line to stdout and flushes it, after a pause long enough
/// that the jobs of one test run on different workers; returns the pid.
int print_line(int i) {
  std::this_thread::sleep_for(50ms);
  std::printf("job %d\n", i);
  std::fflush(stdout);
  return static_cast<int>(::getpid());
}
WEBEXEC_REGISTER_JOB("host.print_line", print_line);

/// Forks a child that sleeps (bounded) and returns the child's pid.
int start_sleeper() {
  const pid_t child = ::fork();
  if (child == 0) {
    const timespec nap{30, 0};
    ::nanosleep(&nap, nullptr);
    ::_exit(0);
  }
  return static_cast<int>(child);
}
WEBEXEC_REGISTER_JOB("host.start_sleeper", start_sleeper);

// ------------------------------------------------------------------ helpers

/// Waits for child `pid`; returns its exit code, or 100 + signal.
int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
  return -1;
}

// Exit codes of the child host.
enum ChildResult : int {
  kOk = 0,
  kSetupFailed = 10,
  kJobDidNotStart = 11,
  kNoForkServer = 12,
  kSignalsNotSeen = 13,
  kJobFailed = 14,
  kLaterJobFailed = 15,
  kForkServerGone = 16,
  kPipeFailed = 17,
};

const char* describe(int code) {
  switch (code) {
    case kOk:
      return "ok";
    case kSetupFailed:
      return "setup failed";
    case kJobDidNotStart:
      return "the job never started";
    case kNoForkServer:
      return "no fork server among the host's children";
    case kSignalsNotSeen:
      return "the host's own handlers did not see the signals";
    case kJobFailed:
      return "the running job failed";
    case kLaterJobFailed:
      return "a job submitted after the signals failed";
    case kForkServerGone:
      return "the fork server did not survive the signals";
    case kPipeFailed:
      return "could not report a pid";
    default:
      return "unexpected exit";
  }
}

constexpr const char* kChildHostFlag = "--webexec-child-host";

/// Starts this executable as a child host running `scenario` with `dir`,
/// `stdout_fd` as its stdout (or the test's, if -1), and `report_fd` kept
/// open. With `own_group`, the child host leads a new process group.
pid_t spawn_child_host(const std::string& scenario, const std::string& dir, int stdout_fd,
                       int report_fd, bool own_group) {
  const std::string report = std::to_string(report_fd);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec: this test may run threads.
    if (own_group) ::setpgid(0, 0);
    if (stdout_fd >= 0) ::dup2(stdout_fd, STDOUT_FILENO);
    if (report_fd >= 0) ::fcntl(report_fd, F_SETFD, 0);
    const char* argv[] = {"/proc/self/exe", kChildHostFlag, scenario.c_str(),
                          dir.c_str(),      report.c_str(), nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));  // NOLINT: execv's signature
    ::_exit(127);
  }
  return pid;
}

/// Reads `fd` until EOF or `patience`; returns what came.
std::string read_until_eof(int fd, Clock::duration patience) {
  const auto deadline = Clock::now() + patience;
  std::string out;
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

/// Waits (bounded) until `pid` is gone, reaping it if it became this
/// process's child (this process is a subreaper).
bool wait_gone(pid_t pid, Clock::duration patience) {
  const auto deadline = Clock::now() + patience;
  for (;;) {
    ::waitpid(pid, nullptr, WNOHANG);
    if (webexec_test::process_gone(pid)) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

// ------------------------------------------------------------------ child hosts

volatile std::sig_atomic_t interrupts = 0;
volatile std::sig_atomic_t terminations = 0;

/// Child host "group-signals": while a job runs, SIGINT and SIGTERM go to
/// the host's whole process group (a terminal's Ctrl-C), and SIGINT,
/// SIGTERM, SIGHUP and SIGQUIT to the fork server and the worker one by one
/// (a service manager stopping a control group). The host handles them and
/// drains: the job completes, and a later one runs too.
int child_host_group_signals(const std::string& dir) {
  std::signal(SIGINT, [](int) { interrupts = interrupts + 1; });
  std::signal(SIGTERM, [](int) { terminations = terminations + 1; });
  webexec::App app("signals");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 2);
  webexec::Executor executor(app);
  const std::string pid_file = dir + "/worker.pid";
  const std::string go_file = dir + "/go";
  auto running = executor.submit(wait_for_go, pid_file, go_file);
  if (!webexec_test::wait_for_file(pid_file, 30s)) return kJobDidNotStart;
  const auto servers = webexec_test::my_children();
  if (servers.size() != 1) return kNoForkServer;
  const pid_t fork_server = servers[0];
  const pid_t worker = webexec_test::announced_pid(pid_file);

  ::kill(0, SIGINT);
  ::kill(0, SIGTERM);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    ::kill(fork_server, sig);
    ::kill(worker, sig);
  }
  // The host's own handlers run (on one of its threads) soon after.
  const auto deadline = Clock::now() + 10s;
  while ((interrupts == 0 || terminations == 0) && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  if (interrupts == 0 || terminations == 0) return kSignalsNotSeen;

  // The host now drains, as a service does on SIGTERM.
  int code = kOk;
  try {
    // A new worker comes from the fork server, which must still be there.
    if (executor.submit(add, 2, 3).result(30s) != 5) code = kLaterJobFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child host: later job: %s\n", e.what());
    code = kLaterJobFailed;
  }
  if (webexec_test::process_gone(fork_server) || webexec_test::process_state(fork_server) == 'Z') {
    code = kForkServerGone;
  }
  webexec_test::write_file_atomically(go_file, "go");
  executor.shutdown(/*wait=*/true);
  try {
    if (running.result(0s) != 42) code = kJobFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child host: running job: %s\n", e.what());
    if (code == kOk) code = kJobFailed;
  }
  return code;
}

/// Child host "buffered-output": prints a line into stdout's buffer (a
/// pipe: fully buffered), then, with `hook`, starts the fork server as
/// main's first line would (output before it stands for output from static
/// initialisation); without, lets init_app start it. Three workers print a
/// line each.
int child_host_buffered_output(bool hook) {
  std::printf("buffered before the fork server\n");
  if (hook) webexec::process::start_fork_server();
  webexec::App app("output");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 3);
  webexec::Executor executor(app);
  std::vector<webexec::Future<int>> jobs;
  for (int i = 0; i < 3; ++i) jobs.push_back(executor.submit(print_line, i));
  for (auto& job : jobs) {
    if (job.result(30s) <= 0) return kJobFailed;
  }
  executor.shutdown(true);
  std::fflush(stdout);  // as returning from main would: the host's line, once
  return kOk;
}

/// Child host "exit-with-sleeper": a job starts a child that sleeps; the
/// host reports the child's pid on `report_fd` and exits without shutdown.
int child_host_exit_with_sleeper(int report_fd) {
  auto* app = new webexec::App("sleeper");  // leaked: the host exits abruptly
  app->config().set("EXECUTOR_TYPE", "process");
  app->config().set("EXECUTOR_MAX_WORKERS", 1);
  auto* executor = new webexec::Executor(*app);
  const std::int32_t sleeper = executor->submit(start_sleeper).result(30s);
  if (sleeper <= 0) return kJobFailed;
  if (::write(report_fd, &sleeper, sizeof sleeper) != static_cast<ssize_t>(sizeof sleeper)) {
    return kPipeFailed;
  }
  return kOk;
}

int child_host_main(int argc, char** argv) {
  const std::string scenario = argc > 2 ? argv[2] : "";
  // Starts the fork server itself, later than here.
  if (scenario == "buffered-output-hook") ::_exit(child_host_buffered_output(true));
  if (scenario == "buffered-output-init-app") ::_exit(child_host_buffered_output(false));
  try {
    webexec::process::start_fork_server();  // the first line of an application's main
    if (argc < 5) ::_exit(kSetupFailed);
    const std::string dir = argv[3];
    const int report_fd = std::atoi(argv[4]);
    if (scenario == "group-signals") ::_exit(child_host_group_signals(dir));
    if (scenario == "exit-with-sleeper") ::_exit(child_host_exit_with_sleeper(report_fd));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child host: %s\n", e.what());
  }
  ::_exit(kSetupFailed);
}

// ------------------------------------------------------------------ item 5

TEST(ProcessHostTest, GroupSignalsLeaveTheForkServerAndWorkersToTheHost) {
  webexec_test::TempDir dir;
  const pid_t host = spawn_child_host("group-signals", dir.str(), -1, -1, /*own_group=*/true);
  ASSERT_GT(host, 0);
  const int code = wait_child(host);
  EXPECT_EQ(code, kOk) << describe(code);
}

// ------------------------------------------------------------------ item 10

void expect_output_printed_once(const std::string& scenario) {
  webexec_test::TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t host = spawn_child_host(scenario, dir.str(), fds[1], -1, false);
  ASSERT_GT(host, 0);
  ::close(fds[1]);
  // EOF once the host and every process that inherited its stdout exit.
  const std::string output = read_until_eof(fds[0], 60s);
  ::close(fds[0]);
  const int code = wait_child(host);
  EXPECT_EQ(code, kOk) << describe(code);
  EXPECT_EQ(count(output, "buffered before the fork server"), 1U) << output;
  EXPECT_EQ(count(output, "job "), 3U) << output;
}

TEST(ProcessHostTest, OutputBufferedBeforeStartForkServerIsPrintedOnce) {
  expect_output_printed_once("buffered-output-hook");
}

TEST(ProcessHostTest, OutputBufferedBeforeInitAppIsPrintedOnce) {
  expect_output_printed_once("buffered-output-init-app");
}

// ------------------------------------------------------------------ item 7

TEST(ProcessHostTest, AProcessAJobStartedDoesNotOutliveTheHost) {
  webexec_test::TempDir dir;
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);  // orphans come here, to be reaped
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t host = spawn_child_host("exit-with-sleeper", dir.str(), -1, fds[1], false);
  ASSERT_GT(host, 0);
  ::close(fds[1]);
  std::int32_t sleeper = -1;
  const bool reported = ::read(fds[0], &sleeper, sizeof sleeper) == sizeof sleeper;
  ::close(fds[0]);
  const int code = wait_child(host);
  ASSERT_EQ(code, kOk) << describe(code);
  ASSERT_TRUE(reported);
  ASSERT_GT(sleeper, 0);
  const bool gone = wait_gone(sleeper, webexec_test::kExitPatience);
  EXPECT_TRUE(gone) << "the job's child " << sleeper << " outlived the host";
  if (!gone) ::kill(sleeper, SIGKILL);
  // Reap the fork server and the worker if they came here.
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

}  // namespace

// No start_fork_server() here: the hosts are child processes.
int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == kChildHostFlag) return child_host_main(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
