/// The fork server that starts worker processes for EXECUTOR_TYPE=process.
///
/// Forking a process that runs threads is unsafe: only the forking thread
/// survives in the child, and a lock another thread held (in malloc, stdio,
/// a library) stays locked forever. So webexec forks its worker processes
/// from a *fork server*: a small single-threaded process forked from the
/// host while the host is still single-threaded. Workers are forked from it
/// on demand and inherit the host's memory image as it was then, including
/// every job registered so far.
///
/// Call `start_fork_server()` as the first line of `main`, before any
/// thread starts (and after static initialisation, where
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
/// Without that line, a process executor starts the fork server itself at
/// `init_app` if the process is still single-threaded; otherwise `init_app`
/// throws `InvalidStateError` explaining this. Nothing ever re-runs `main`.
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

/// Starts the fork server if it is not running. Idempotent.
/// Throws: `InvalidStateError` if this process already runs other threads;
/// `std::system_error` if the fork fails.
WEBEXEC_API void start_fork_server();

/// True once the fork server runs (in this process).
WEBEXEC_API bool fork_server_running() noexcept;

/// How many threads this process runs now (from /proc/self/status).
WEBEXEC_API int thread_count() noexcept;

namespace detail {

/// A worker process: its pid, the host's end of its socket, and the start
/// slots it shares with the host (unmap with unmap_slots).
struct SpawnedWorker {
  pid_t pid = -1;
  int fd = -1;
  webexec::detail::StartSlot* slots = nullptr;
};

/// Releases the host's mapping of a worker's start slots.
WEBEXEC_API void unmap_slots(webexec::detail::StartSlot* slots) noexcept;

/// Forks a worker from the fork server. Thread-safe.
WEBEXEC_API SpawnedWorker spawn_worker();

/// Reaps worker `pid` (waiting for it to exit) and returns its wait status,
/// or -1 if it is unknown. Thread-safe.
WEBEXEC_API int reap_worker(pid_t pid);

/// "exited with code 3", "killed by signal 11 (SIGSEGV)".
WEBEXEC_API std::string describe_wait_status(int status);

/// The registry size when the fork server started: jobs registered later
/// do not exist in worker processes.
WEBEXEC_API std::uint64_t jobs_known_to_workers() noexcept;

/// Runs in a worker process: serves job requests on `fd` until EOF.
[[noreturn]] void worker_main(int fd, webexec::detail::StartSlot* slots);

/// In a worker process, the socket to the host (-1 elsewhere). Lets tests
/// make a worker misbehave on purpose.
WEBEXEC_API int current_worker_fd() noexcept;

}  // namespace detail
}  // namespace webexec::process
