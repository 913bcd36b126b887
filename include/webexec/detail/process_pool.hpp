/// The host side of EXECUTOR_TYPE=process (not API; use `Executor`).
///
/// A dispatcher thread owns the worker processes: it sends each queued job
/// to an idle worker (starting workers through the fork server, up to
/// `max_workers`), reads results and progress, enforces time limits, and
/// replaces a worker that dies, misbehaves or has run `max_tasks_per_child`
/// jobs. Futures complete on the dispatcher thread. The dispatcher never
/// blocks on a socket (non-blocking descriptors, buffered partial writes),
/// and nothing it does can end the process: an exception there fails a
/// future or is reported through `report_error`. src/process/wire.hpp has
/// the frame format.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/future_state.hpp"
#include "webexec/detail/remote_job.hpp"
#include "webexec/detail/spin.hpp"

namespace webexec::detail {

/// How many jobs any process pool of this process has taken back from a
/// worker's queue so far, to run them elsewhere (for tests and
/// diagnostics). Thread-safe.
WEBEXEC_API std::uint64_t process_jobs_revoked() noexcept;

/// In a worker process: the id of the job it is running (0 outside a job;
/// for tests that forge frames). Not thread-safe against the worker loop.
WEBEXEC_API std::uint64_t current_worker_job_id() noexcept;

/// The names of Step 4: a process job is a RemoteJob (detail/remote_job.hpp).
using ProcessJob = RemoteJob;
template <typename R>
using ProcessTaskState = RemoteTaskState<R>;

struct ProcessPoolOptions {
  int max_workers = 1;
  int max_tasks_per_child = 0;  ///< 0: workers are never recycled
  std::string name;             ///< for messages
  /// EXECUTOR_MAX_PAYLOAD: the largest encoded job (arguments and context)
  /// and result, in bytes (at most 1 GiB).
  std::uint32_t max_payload = 64U << 20U;
};

class WEBEXEC_API ProcessPool {
 public:
  explicit ProcessPool(ProcessPoolOptions options);
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;
  /// shutdown(wait=true).
  ~ProcessPool();

  /// Encodes `job->request` (CBOR, in the calling thread) and queues the
  /// job. A job that cannot be encoded or is over `max_payload` is not
  /// queued: its future fails at once (PayloadTooLargeError naming both
  /// sizes, or the encoder's error), and its callbacks run in this thread.
  /// Thread-safe. Throws: `ShutdownError` after shutdown().
  void submit(std::unique_ptr<ProcessJob> job);

  void shutdown(bool wait, bool cancel_futures);

  [[nodiscard]] int max_workers() const noexcept;

  /// True once shutdown() has been called.
  [[nodiscard]] bool is_shutdown() const;

  /// The pids of the live worker processes (for tests and diagnostics).
  [[nodiscard]] std::vector<pid_t> worker_pids() const;

  /// The pool's counters (see EngineStats). Thread-safe.
  [[nodiscard]] EngineStats stats() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webexec::detail
