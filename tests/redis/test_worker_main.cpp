// redis_test_worker: a redis::Worker in its own process, for tests that kill -9,
// SIGSTOP or SIGTERM a worker (fork of a threaded test would not be safe; tests
// posix_spawn this instead). Its main thread waits for SIGTERM and then stops the
// worker with a grace period; its job threads run the jobs registered below.
//
//   redis_test_worker <url> <queue> <threads> <visibility_ms> <heartbeat_ms>
//                     <exec_log> <grace_ms>
//
// Every job appends "<job id> <attempt>\n" to <exec_log> when it starts (O_APPEND:
// one write per line), so a test can count executions across processes.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "webexec/job_registry.hpp"

#include "redis/url.hpp"
#include "redis/worker.hpp"

namespace {

std::string exec_log;

void log_start() {
  const std::string line = webexec::redis::current_job_id() + " " +
                           std::to_string(webexec::redis::current_job_attempt()) + "\n";
  const int fd = ::open(exec_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::abort();
  ::close(fd);
}

/// Sleeps `ms`, then returns "r:<arg>".
std::string slow(std::string arg, int ms) {
  log_start();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return "r:" + arg;
}
WEBEXEC_REGISTER_JOB("slow", slow);

/// Sleeps `ms`, then returns "attempt <n>": which run's result was kept.
std::string tagged(int ms) {
  log_start();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return "attempt " + std::to_string(webexec::redis::current_job_attempt());
}
WEBEXEC_REGISTER_JOB("tagged", tagged);

/// Kills the process that runs it, like a job that segfaults.
int poison() {
  log_start();
  ::_exit(9);
}
WEBEXEC_REGISTER_JOB("poison", poison);

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: redis_test_worker url queue threads visibility_ms "
                 "heartbeat_ms exec_log grace_ms\n");
    return 2;
  }
  exec_log = argv[6];
  // SIGTERM is waited for by this thread only: blocked before any thread starts.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  try {
    webexec::redis::WorkerOptions options;
    options.queue = argv[2];
    options.threads = std::atoi(argv[3]);
    options.visibility_timeout = std::chrono::milliseconds(std::atoi(argv[4]));
    options.heartbeat = std::chrono::milliseconds(std::atoi(argv[5]));
    options.block = std::chrono::milliseconds(100);
    webexec::redis::Worker worker(webexec::redis::parse_redis_url("EXECUTOR_REDIS_URL", argv[1]),
                                  options);
    std::fprintf(stdout, "ready\n");
    std::fflush(stdout);
    int signal = 0;
    sigwait(&term, &signal);
    const bool all = worker.stop(std::chrono::steady_clock::now() +
                                 std::chrono::milliseconds(std::atoi(argv[7])));
    std::fflush(stdout);
    // Job code cannot be interrupted: leave without waiting for released jobs.
    if (!all) ::_exit(1);
    // Every job thread has left its loop: ~Worker joins them at once.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_test_worker: %s\n", e.what());
    return 3;
  }
  return 0;
}
