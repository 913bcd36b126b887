/// The redis engine's worker (internal, not API): job threads that claim jobs
/// from a queue, run the registered job each names, and finish them, with a
/// heartbeat that keeps their leases.
///
/// - `threads` job threads (EXECUTOR_MAX_WORKERS), each with its own
///   connection: claim (XREADGROUP BLOCK `block`, then START), decode the
///   payload (src/redis/payload.hpp: the process engine's frames), run the
///   job through `JobRegistry` inside the context that came with it, and
///   FINISH with the encoded result or the error {type, message}. Only
///   registered names run: an unknown name fails the job with a clear error;
///   nothing from the wire is code. A FINISH lost to a dropped connection is
///   retried (FINISH is idempotent for its claim).
/// - One heartbeat thread (own connection) every `heartbeat`: EXTEND for each
///   running job; a stop request from another replica (or a lost lease, or
///   the time limit) is passed to the job's `std::stop_source`. Once per
///   heartbeat it also reaps deliveries idle past `visibility_timeout` and
///   promotes due scheduled jobs, bounded by `reap_count`.
/// - `stop(deadline)` stops claiming, waits for running jobs up to the
///   deadline, then RELEASEs the rest (redelivered at once, not after the
///   visibility timeout) and asks them to stop.
///
/// `JobRegistry` jobs take no `std::stop_token`: a job that wants to honour
/// stop requests reads `current_job_stop_token()` (see below).
///
/// Thread safety: stop() and stats() may be called from any thread.
///
/// Example:
/// ```
/// webexec::redis::Worker w(parse_redis_url("EXECUTOR_REDIS_URL", url),
///                          {.queue = "default", .threads = 2});
/// // ... on SIGTERM:
/// w.stop(std::chrono::steady_clock::now() + std::chrono::seconds(30));
/// ```
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "webexec/detail/mutex.hpp"
#include "webexec/job_registry.hpp"

#include "redis/connection.hpp"
#include "redis/protocol.hpp"
#include "redis/url.hpp"

namespace webexec::redis {

struct WorkerOptions {
  std::string queue = "default";
  /// time_limit is EXECUTOR_TASK_TIMEOUT; max_attempts, backoff, result_ttl
  /// as in JobQueueOptions.
  JobQueueOptions queue_options{};
  ConnectOptions connect{};
  /// EXECUTOR_MAX_WORKERS: job threads.
  int threads = 1;
  /// EXECUTOR_REDIS_VISIBILITY_TIMEOUT: a delivery idle this long is taken back.
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  /// EXECUTOR_REDIS_HEARTBEAT: lease renewal period (less than the visibility timeout).
  std::chrono::milliseconds heartbeat{std::chrono::seconds(10)};
  /// XREADGROUP BLOCK of an idle job thread: bounds how long stop() waits for it.
  std::chrono::milliseconds block{1000};
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{2000};
  /// EXECUTOR_MAX_PAYLOAD: the largest payload read and result written.
  std::size_t max_payload = std::size_t{64} << 20U;
  /// Deliveries reaped and scheduled jobs promoted per heartbeat, at most.
  int reap_count = 100;
  /// Consumer names are `<id>:<thread>`; empty: `<host>:<pid>:<random>`.
  std::string id{};
  bool load_library = true;
  /// The jobs this worker runs; null: `JobRegistry::global()`.
  const JobRegistry* registry = nullptr;
};

/// Counters since construction (relaxed; for tests and Step 6).
struct WorkerStats {
  std::uint64_t started = 0;
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t fenced = 0;    ///< finishes refused: the lease was lost meanwhile
  std::uint64_t released = 0;  ///< handed back by stop()
  std::uint64_t stale = 0;     ///< deliveries read but not started
  std::uint64_t dead_on_start = 0;
  std::uint64_t stop_requests = 0;  ///< stop tokens requested (remote stop, lost lease)
  std::uint64_t requeued = 0;       ///< by this worker's reaper
  std::uint64_t dead = 0;           ///< dead-lettered by this worker's reaper
  std::uint64_t promoted = 0;
};

class Worker {
 public:
  /// Connects (and loads the library), then starts the threads.
  /// Throws: `ConnectionError` if Redis is unreachable; `std::invalid_argument`
  /// for bad options (heartbeat not below the visibility timeout, threads < 1).
  Worker(RedisUrl url, WorkerOptions options = {});
  /// stop(now), then waits for every job thread: a job's code cannot be
  /// interrupted, so this waits for running jobs to return. A process that
  /// must exit by a deadline calls stop(deadline) and then exits.
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Stops claiming; waits until every running job finished or `deadline`;
  /// then releases the jobs still running and requests their stop tokens.
  /// Returns true if every job finished (nothing was released). Idempotent.
  bool stop(std::chrono::steady_clock::time_point deadline);

  [[nodiscard]] WorkerStats stats() const;
  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  /// Jobs running now.
  [[nodiscard]] int busy() const;

 private:
  struct Slot;
  void job_thread(int index);
  void heartbeat_thread();
  void run_claim(Slot& slot, JobQueue& queue, Claim& claim);
  /// Waits `delay` or until stop() (`heartbeat`: until the heartbeat is
  /// stopped); false once it is.
  bool pause(std::chrono::milliseconds delay, bool heartbeat);

  RedisUrl url_;
  WorkerOptions options_;
  std::string id_;
  const JobRegistry* registry_;

  mutable detail::Mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ WEBEXEC_GUARDED_BY(mutex_) = false;
  bool heartbeat_stopping_ WEBEXEC_GUARDED_BY(mutex_) = false;
  std::optional<std::chrono::steady_clock::time_point> deadline_ WEBEXEC_GUARDED_BY(mutex_);
  int active_ WEBEXEC_GUARDED_BY(mutex_) = 0;  // job threads not yet out of their loop
  int busy_ WEBEXEC_GUARDED_BY(mutex_) = 0;    // job threads running a job
  std::vector<std::unique_ptr<Slot>> slots_;   // one per job thread; fields under mutex_
  std::unique_ptr<Connection> control_;        // stop()'s releases; under stop_mutex_
  detail::Mutex stop_mutex_;

  struct Counters;
  std::unique_ptr<Counters> counters_;
  std::vector<std::thread> threads_;
  std::thread heartbeat_;
};

/// While a Worker runs a job on this thread: that job's stop token (a stop
/// request from any replica, a lost lease, the time limit, or stop() past its
/// deadline); otherwise a token that never stops.
[[nodiscard]] std::stop_token current_job_stop_token() noexcept;
/// While a Worker runs a job on this thread: its id and attempt (the fencing
/// token, 1 for the first run); otherwise "" and 0.
[[nodiscard]] const std::string& current_job_id() noexcept;
[[nodiscard]] std::int64_t current_job_attempt() noexcept;

}  // namespace webexec::redis
