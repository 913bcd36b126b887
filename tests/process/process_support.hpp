// Helpers shared by the EXECUTOR_TYPE=process tests: temporary directories,
// files a worker process writes to tell the host something, checks that a
// process is gone (neither alive nor a zombie), and ways for a job to die.
//
// Host-side waits here poll state owned by *another process* (a file it
// wrote, its /proc entry) with a deadline; they never synchronise threads of
// one process.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"

namespace webexec_test {

using namespace std::chrono_literals;

/// Upper bound for a result that should come quickly; reaching it fails the
/// test instead of hanging it.
inline constexpr auto kResultPatience = std::chrono::seconds(60);

/// Upper bound for a process to disappear once it should.
inline constexpr auto kExitPatience = std::chrono::seconds(15);

/// `part` occurs in `text`.
inline testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

/// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "webexec-process-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  [[nodiscard]] std::string file(const std::string& name) const { return path_ / name; }
  [[nodiscard]] std::string str() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Writes `content` to `path` atomically (a reader sees all of it or no
/// file), with plain system calls so it also works in a process about to die.
inline void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

inline bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

/// In a worker: writes this process's pid to `path` (tells the host "I
/// started, and this is me").
inline void announce_pid(const std::string& path) {
  write_file_atomically(path, std::to_string(::getpid()));
}

/// The pid a worker announced in `path`, or -1.
inline pid_t announced_pid(const std::string& path) {
  const std::string text = read_file(path);
  return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
}

/// Host side: waits (bounded) until another process creates `path`.
inline bool wait_for_file(const std::string& path,
                          std::chrono::steady_clock::duration patience = kResultPatience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!file_exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// In a worker: sleeps until `path` exists (the host's go-ahead) or
/// `patience` passes. Returns whether the file appeared.
inline bool worker_wait_for_file(const std::string& path,
                                 std::chrono::steady_clock::duration patience = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!file_exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// The state letter of `pid` from /proc/<pid>/stat ('R', 'S', 'Z', ...), or
/// 0 if there is no such process.
inline char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return 0;
  std::string line;
  std::getline(in, line);
  const auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return 0;
  return line[paren + 2];
}

/// True if `pid` neither runs nor lingers as a zombie.
inline bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  return process_state(pid) == 0;
}

/// Stops `pid` with SIGSTOP and waits (bounded) until /proc says so.
inline bool stop_process(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (process_state(pid) != 'T') {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Makes `app` run its executor's jobs in up to `workers` worker processes.
inline void use_processes(webexec::App& app, int workers) {
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", workers);
}

/// Waits (bounded) until every pid in `pids` is gone; returns the ones that
/// are not, each with its state letter ('Z' = a zombie).
inline std::string lingering(const std::set<pid_t>& pids,
                             std::chrono::steady_clock::duration patience = kExitPatience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    std::string out;
    for (const pid_t pid : pids) {
      if (!process_gone(pid)) {
        const char state = process_state(pid);
        out += std::to_string(pid) + "(" + (state != 0 ? std::string(1, state) : "?") + ") ";
      }
    }
    if (out.empty() || std::chrono::steady_clock::now() > deadline) return out;
    std::this_thread::sleep_for(2ms);
  }
}

/// The children of `pid` (every thread's), from /proc.
inline std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code error;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
    std::ifstream in(task.path() / "children");
    long child = 0;
    while (in >> child) out.push_back(static_cast<pid_t>(child));
  }
  return out;
}

/// The test process's children: the fork server (and nothing else, unless
/// a test forks).
inline std::vector<pid_t> my_children() { return children_of(::getpid()); }

/// Waits (bounded) until the fork server(s) of this process have no
/// children left (no worker alive, none a zombie); returns what remains.
inline std::string fork_server_leftovers(
    std::chrono::steady_clock::duration patience = kExitPatience) {
  const auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    std::string out;
    for (const pid_t server : my_children()) {
      for (const pid_t child : children_of(server)) {
        const char state = process_state(child);
        out += std::to_string(child) + "(" + (state != 0 ? std::string(1, state) : "?") + ") ";
      }
    }
    if (out.empty() || std::chrono::steady_clock::now() > deadline) return out;
    std::this_thread::sleep_for(2ms);
  }
}

/// In a worker: dies by `sig` with its default action (no core file, and no
/// sanitizer handler turning the signal into an exit code).
[[noreturn]] inline void die_by_signal(int sig) {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(sig, &action, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(120);  // unreachable unless the signal was ignored
}

/// The pid named in a BrokenProcessPool/TimeoutError message ("worker
/// process 1234 ..." or "its worker process 1234 ..."), or -1.
inline pid_t pid_in_message(const std::string& message) {
  const std::string marker = "worker process ";
  const auto at = message.find(marker);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::atol(message.c_str() + at + marker.size()));
}

}  // namespace webexec_test
