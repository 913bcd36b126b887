// Lifetime of EXECUTOR_TYPE=process workers (Step 3): when the host exits
// without shutting down, its fork server and workers exit too and nothing
// lingers; a host that forgot start_fork_server() and already runs threads
// gets a clear error; a child forked from a host does not use the host's
// fork server.
//
// The hosts are child processes of this test. One that needs a fork server
// is this same executable started again in "child host" mode, whose main()
// calls start_fork_server() first, as an application's does (a forked copy
// of the test would not do: under ThreadSanitizer a forked child already
// runs the sanitizer's background thread, so it may not start a fork
// server). This file's test main() does NOT start the fork server.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
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

/// Announces its pid in `pid_file`, then blocks (bounded) as if forever.
int block_forever(std::string pid_file) {
  webexec_test::announce_pid(pid_file);
  std::this_thread::sleep_for(60s);
  return -1;
}
WEBEXEC_REGISTER_JOB("lifetime.block_forever", block_forever);

int worker_pid() { return static_cast<int>(::getpid()); }
WEBEXEC_REGISTER_JOB("lifetime.pid", worker_pid);

/// Writes all of `data` to `fd`.
bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads exactly `size` bytes from `fd`; false on EOF or error.
bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

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

/// Makes this process the reaper of its orphaned descendants until destroyed.
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

// Exit codes of the child host, so the parent can say what went wrong.
enum ChildResult : int {
  kOk = 0,
  kSetupFailed = 10,
  kWorkersDidNotStart = 11,
  kNoForkServerChild = 12,
  kPipeFailed = 13,
  kNotRefused = 20,
  kWrongMessage = 21,
  kWrongException = 22,
  kForkServerStillRunning = 23,
  kOneThread = 24,
  kJobFailed = 30,
};

const char* describe(int code) {
  switch (code) {
    case kOk:
      return "ok";
    case kSetupFailed:
      return "setup threw";
    case kWorkersDidNotStart:
      return "the blocking jobs never started";
    case kNoForkServerChild:
      return "no fork server among the host's children";
    case kPipeFailed:
      return "could not report the pids";
    case kNotRefused:
      return "the executor was created without the hook";
    case kWrongMessage:
      return "the error does not mention start_fork_server";
    case kWrongException:
      return "another exception than InvalidStateError";
    case kForkServerStillRunning:
      return "the forked child still saw the parent's fork server";
    case kOneThread:
      return "the helper thread did not start";
    case kJobFailed:
      return "a job failed";
    default:
      return "unexpected exit";
  }
}

// ------------------------------------------------------------------ child hosts

constexpr const char* kChildHostFlag = "--webexec-child-host";

/// Starts this executable as a child host running `scenario` with `fd`
/// (inherited) and `dir`; returns its pid.
pid_t spawn_child_host(const std::string& scenario, int fd, const std::string& dir) {
  const std::string fd_text = std::to_string(fd);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec: this test may run threads.
    const char* argv[] = {"/proc/self/exe", kChildHostFlag, scenario.c_str(),
                          fd_text.c_str(),  dir.c_str(),    nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));  // NOLINT: execv's signature
    ::_exit(127);
  }
  return pid;
}

/// Child host "exit-abruptly": two workers blocked in jobs; reports
/// [fork server, worker, worker] on `fd`, then exits without shutdown.
int child_host_exit_abruptly(int fd, const std::string& dir) {
  // Leaked on purpose: the host exits without shutdown or destructors.
  auto* app = new webexec::App("lifetime");
  app->config().set("EXECUTOR_TYPE", "process");
  app->config().set("EXECUTOR_MAX_WORKERS", 2);
  auto* executor = new webexec::Executor(*app);
  const std::string a = dir + "/a.pid";
  const std::string b = dir + "/b.pid";
  static_cast<void>(executor->submit(block_forever, a));
  static_cast<void>(executor->submit(block_forever, b));
  if (!webexec_test::wait_for_file(a, 30s) || !webexec_test::wait_for_file(b, 30s)) {
    return kWorkersDidNotStart;
  }
  const std::vector<pid_t> servers = webexec_test::my_children();
  if (servers.size() != 1) return kNoForkServerChild;
  const std::int32_t pids[3] = {servers[0], webexec_test::announced_pid(a),
                                webexec_test::announced_pid(b)};
  if (!write_all(fd, pids, sizeof pids)) return kPipeFailed;
  return kOk;  // no shutdown, no destructors, threads and workers still busy
}

/// Child host "fork-a-child": forks a child (as a web server might fork a
/// helper) which must not use this host's fork server: it starts its own
/// if it is single-threaded, and is refused clearly if not.
int child_host_fork_a_child() {
  const std::vector<pid_t> servers = webexec_test::my_children();
  if (servers.size() != 1) return kNoForkServerChild;
  const pid_t host_server = servers[0];
  const pid_t child = ::fork();
  if (child < 0) return kSetupFailed;
  if (child == 0) {
    if (webexec::process::fork_server_running()) ::_exit(kForkServerStillRunning);
    const bool single_threaded = webexec::process::thread_count() == 1;
    int code = kOk;
    try {
      webexec::App app("forked");
      app.config().set("EXECUTOR_TYPE", "process");
      app.config().set("EXECUTOR_MAX_WORKERS", 1);
      webexec::Executor executor(app);
      if (!single_threaded) ::_exit(kNotRefused);
      // Its own fork server, not the host's, forks its worker.
      const int pid = executor.submit(worker_pid).result(30s);
      const auto own = webexec_test::my_children();
      if (pid <= 0 || own.size() != 1 || own[0] == host_server) code = kJobFailed;
      const auto workers = webexec_test::children_of(own.at(0));
      if (std::find(workers.begin(), workers.end(), pid) == workers.end()) code = kJobFailed;
    } catch (const webexec::InvalidStateError& e) {
      // Under ThreadSanitizer a forked child runs the sanitizer's thread.
      if (single_threaded) code = kSetupFailed;
      if (std::string(e.what()).find("start_fork_server") == std::string::npos) {
        code = kWrongMessage;
      }
    } catch (...) {
      code = kJobFailed;
    }
    ::_exit(code);
  }
  return wait_child(child);
}

int child_host_main(int argc, char** argv) {
  try {
    webexec::process::start_fork_server();  // the first line of an application's main
    if (argc < 5) ::_exit(kSetupFailed);
    const std::string scenario = argv[2];
    const int fd = std::atoi(argv[3]);
    const std::string dir = argv[4];
    if (scenario == "exit-abruptly") ::_exit(child_host_exit_abruptly(fd, dir));
    if (scenario == "fork-a-child") ::_exit(child_host_fork_a_child());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child host: %s\n", e.what());
  }
  ::_exit(kSetupFailed);
}

// ------------------------------------------------------------------ host exit

TEST(ProcessLifetimeTest, ForkServerAndWorkersExitWhenTheHostExits) {
  webexec_test::TempDir dir;
  const SubreaperScope subreaper;
  ASSERT_TRUE(subreaper.ok());
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  // The write end must survive exec in the child host.
  ASSERT_EQ(::fcntl(fds[1], F_SETFD, 0), 0);

  const pid_t host = spawn_child_host("exit-abruptly", fds[1], dir.str());
  ASSERT_GT(host, 0);
  ::close(fds[1]);
  std::int32_t pids[3] = {-1, -1, -1};
  const bool reported = read_all(fds[0], pids, sizeof pids);
  ::close(fds[0]);
  const int code = wait_child(host);
  ASSERT_EQ(code, kOk) << describe(code);
  ASSERT_TRUE(reported);
  const std::set<pid_t> expected(std::begin(pids), std::end(pids));
  ASSERT_EQ(expected.size(), 3U);
  for (const pid_t pid : expected) EXPECT_GT(pid, 0);

  // Orphans come to this process (the subreaper): reap until every one of
  // them has exited (reaped here, or by the fork server before it exited),
  // within a deadline.
  std::set<pid_t> reaped;
  const auto all_exited = [&] {
    return std::all_of(expected.begin(), expected.end(), [&](pid_t pid) {
      return reaped.count(pid) != 0 || webexec_test::process_gone(pid);
    });
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      reaped.insert(pid);
      continue;
    }
    if (pid < 0 && errno == ECHILD && all_exited()) break;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(2ms);
  }
  for (const pid_t pid : expected) {
    EXPECT_TRUE(reaped.count(pid) != 0 || webexec_test::process_gone(pid))
        << "process " << pid << " did not exit with its host";
  }
  EXPECT_EQ(webexec_test::lingering(expected, 0s), "");
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD) << "some process still lingers";
}

// ------------------------------------------------------------------ missing hook

TEST(ProcessLifetimeTest, MissingStartForkServerInAThreadedHostIsReportedClearly) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // webexec's state was reset in this forked child; now a thread starts,
    // as a web server's would, before anyone calls start_fork_server().
    if (webexec::process::fork_server_running()) ::_exit(kForkServerStillRunning);
    std::promise<void> release;
    std::thread server_thread([done = release.get_future()]() mutable { done.wait(); });
    int code = kOk;
    if (webexec::process::thread_count() < 2) code = kOneThread;
    try {
      webexec::App app("forgot-the-hook");
      app.config().set("EXECUTOR_TYPE", "process");
      webexec::Executor executor(app);
      code = kNotRefused;
    } catch (const webexec::InvalidStateError& e) {
      if (std::string(e.what()).find("start_fork_server") == std::string::npos) {
        code = kWrongMessage;
      }
    } catch (...) {
      code = kWrongException;
    }
    release.set_value();
    server_thread.join();
    ::_exit(code);
  }
  const int code = wait_child(child);
  EXPECT_EQ(code, kOk) << describe(code);
}

TEST(ProcessLifetimeTest, AChildForkedFromAHostDoesNotUseTheHostsForkServer) {
  webexec_test::TempDir dir;
  const pid_t host = spawn_child_host("fork-a-child", -1, dir.str());
  ASSERT_GT(host, 0);
  const int code = wait_child(host);
  EXPECT_EQ(code, kOk) << describe(code);
}

}  // namespace

// No start_fork_server() here: the hosts are child processes.
int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == kChildHostFlag) return child_host_main(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
