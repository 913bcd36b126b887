/// The fork server that starts worker processes for EXECUTOR_TYPE=process.
///
/// Forking a process that runs threads is unsafe: only the forking thread
/// survives in the child, and a lock another thread held (in malloc, stdio,
/// a library) stays locked forever. So webexec never forks the host: it
/// forks its worker processes from a *fork server*, a small single-threaded
/// process. Call `start_fork_server()` as the first line of `main`, before
/// any thread starts (and after static initialisation, where
/// `WEBEXEC_REGISTER_JOB` and namespace-scope `executor.job(...)` register
/// jobs):
///
/// ```
/// int main(int argc, char** argv) {
///   webexec::process::start_fork_server();
///   ...
/// }
/// ```
///
/// That call re-executes the program (`/proc/self/exe`, same arguments and
/// environment, plus `WEBEXEC_FORK_SERVER_FD`) in fork-server mode: in the
/// new process static initialisation registers the same jobs (the host
/// checks the count), `main` reaches the same first line, and
/// `start_fork_server()` there becomes the fork server and never returns.
/// If the fork server dies (`kill -9`), the next request for a worker
/// re-executes a new one the same way, safely from any thread of a
/// threaded host; jobs that were running in its workers fail with
/// `BrokenProcessPool`, later ones run. The fork server exits when the
/// host's end of its control socket closes (host shutdown or death), and
/// kills every worker's process group first.
///
/// Without that line, a process executor starts the fork server itself at
/// `init_app` by forking the host, if the process is still single-threaded;
/// otherwise `init_app` throws `InvalidStateError` explaining this. Such a
/// fork server can only be restarted while the host is single-threaded.
///
/// The fork server and the workers ignore SIGINT, SIGTERM, SIGHUP and
/// SIGQUIT (a terminal's Ctrl-C, a service manager's stop), and each worker
/// runs in its own process group: the host decides when they end.
///
/// Thread safety: every function here may be called from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "webexec/detail/export.hpp"

namespace webexec::detail {
using StartSlot = std::atomic<std::uint32_t>;
}  // namespace webexec::detail

namespace webexec::process {

/// Starts the fork server if it is not running (by re-executing this
/// program); idempotent. In a program re-executed as the fork server, it
/// becomes the fork server and never returns.
/// Throws: `InvalidStateError` if this process already runs other threads;
/// `std::system_error` if the spawn fails; `BrokenProcessPool` if the new
/// process does not reach this call within 20 s or registered other jobs.
WEBEXEC_API void start_fork_server();

/// True once the fork server was started (in this process); it stays true
/// while a dead fork server is being replaced.
WEBEXEC_API bool fork_server_running() noexcept;

/// How many threads this process runs now (from /proc/self/status).
WEBEXEC_API int thread_count() noexcept;

namespace detail {

/// A worker process: its pid, the host's end of its socket, the start
/// slots it shares with the host (unmap with unmap_slots), and a pidfd
/// that becomes readable (POLLIN) once the worker has exited, even while
/// a process its job forked keeps the socket open. The fork server opens
/// the pidfd before the worker can be reaped, so it always refers to this
/// worker; it is -1 if the kernel has no pidfd_open (Linux < 5.3). The
/// caller owns `fd` and `pidfd` (both close-on-exec).
struct SpawnedWorker {
  pid_t pid = -1;
  int fd = -1;
  webexec::detail::StartSlot* slots = nullptr;
  int pidfd = -1;
};

/// Starts the fork server for `init_app` (no `start_fork_server()` in
/// main): forks it from this host if single-threaded. Idempotent.
/// Throws: like `start_fork_server()`.
WEBEXEC_API void start_fork_server_from_init_app();

/// Releases the host's mapping of a worker's start slots.
WEBEXEC_API void unmap_slots(webexec::detail::StartSlot* slots) noexcept;

/// Forks a worker from the fork server, in its own process group; replaces
/// a dead fork server first. Thread-safe.
/// Throws: `BrokenProcessPool` if a dead fork server cannot be replaced,
/// `std::system_error` if the fork fails.
WEBEXEC_API SpawnedWorker spawn_worker();

/// Reaps worker `pid` (waiting for it to exit), after killing what is left
/// of its process group, and returns its wait status; -1 if it is unknown,
/// `kLostWithForkServer` if its fork server died (it died too). Thread-safe.
WEBEXEC_API int reap_worker(pid_t pid);

/// The wait status of a worker whose fork server died.
inline constexpr int kLostWithForkServer = -2;

/// Kills worker `pid` and everything in its process group (what its jobs
/// started) with SIGKILL. Call it before `reap_worker(pid)`, while the pid
/// cannot have been reused. Thread-safe; never blocks.
WEBEXEC_API void kill_worker(pid_t pid) noexcept;

/// "exited with code 3", "killed by signal 11 (SIGSEGV)".
WEBEXEC_API std::string describe_wait_status(int status);

/// The registry size when the fork server started: jobs registered later
/// do not exist in worker processes.
WEBEXEC_API std::uint64_t jobs_known_to_workers() noexcept;

/// The fork server's pid now, or -1 if it has not started. Thread-safe.
WEBEXEC_API pid_t fork_server_pid() noexcept;

/// Runs in a worker process: serves job requests on `fd` until EOF.
[[noreturn]] void worker_main(int fd, webexec::detail::StartSlot* slots);

/// In a worker process, the socket to the host (-1 elsewhere). Lets tests
/// make a worker misbehave on purpose.
WEBEXEC_API int current_worker_fd() noexcept;

}  // namespace detail
}  // namespace webexec::process
