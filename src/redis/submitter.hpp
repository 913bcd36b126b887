/// The submitting side of the redis engine (internal, not API): enqueues jobs
/// and hears how each one ended, without a connection per waiting job.
///
/// - One connection (under a mutex) for commands: `submit`, `cancel`,
///   `request_stop`. Each job records this submitter's id as `reply_to`.
/// - One listener thread with its own connection: `XREAD BLOCK` (bounded) on
///   this submitter's reply stream `webexec:{q}:replies:<id>` from the last
///   entry it saw. FINISH, dead-lettering and CANCEL write that stream in the
///   same Function call as the transition (docs/redis.md), so no end is missed
///   while the submitter is connected.
/// - A dropped connection is reconnected with capped exponential backoff and
///   jitter, and reading resumes from the last id. After every reconnect (and
///   every `reconcile_every`) each outstanding job's hash is read (HMGET state
///   result), so a trimmed, expired or lost stream entry cannot strand a job.
///   A job whose hash is gone ends as `lost`.
///
/// Every job's callback runs once, on the listener thread. Callbacks of jobs
/// still outstanding at shutdown() never run.
///
/// Thread safety: every member is safe to call from any thread, except that
/// the destructor must not race with other calls.
/// Callbacks run on: the listener thread, one at a time, outside every lock.
///
/// Example:
/// ```
/// webexec::redis::Submitter s(parse_redis_url("EXECUTOR_REDIS_URL", url), {.queue = "q"});
/// std::string id = s.new_job_id();
/// s.submit(id, payload, [](webexec::redis::Completion c) { /* c.end, c.result */ });
/// ```
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "webexec/detail/mutex.hpp"

#include "redis/connection.hpp"
#include "redis/protocol.hpp"
#include "redis/url.hpp"

namespace webexec::redis {

/// How a job ended, as its submitter hears it.
enum class JobEnd {
  succeeded,  ///< `result`: the worker's encoded result
  failed,     ///< `result`: the worker's encoded error
  cancelled,  ///< `result` is empty
  dead,       ///< dead-lettered; `result` says why
  lost,       ///< the job's hash is gone (expired, or lost with an unpersisted server)
};

/// "succeeded", "failed", ...
[[nodiscard]] std::string_view to_string(JobEnd end) noexcept;

struct Completion {
  std::string job_id;
  JobEnd end = JobEnd::lost;
  std::string result;
};

struct SubmitterOptions {
  std::string queue = "default";
  JobQueueOptions queue_options{};
  ConnectOptions connect{};
  /// The listener's XREAD BLOCK: bounds how long shutdown() waits for it
  /// (plus the command timeout when the server is frozen).
  std::chrono::milliseconds block{500};
  /// Reconnect backoff: doubles from min to max, each wait with up to 50 % jitter.
  std::chrono::milliseconds reconnect_min{50};
  std::chrono::milliseconds reconnect_max{2000};
  /// How often every outstanding job is reconciled from its hash even
  /// without a reconnect (a reply stream trimmed while connected).
  std::chrono::milliseconds reconcile_every{std::chrono::seconds(30)};
  /// EXECUTOR_MAX_PAYLOAD: the largest payload submit() sends, in bytes.
  std::size_t max_payload = std::size_t{64} << 20U;
  /// This submitter's id (its reply stream's name); empty: `<host>:<pid>:<random>`.
  std::string id{};
  /// FUNCTION LOAD the library at construction.
  bool load_library = true;
};

class Submitter {
 public:
  using Callback = std::function<void(Completion)>;

  /// Connects (and loads the library), then starts the listener.
  /// Throws: `ConnectionError` if Redis is unreachable; `std::invalid_argument`
  /// for bad options.
  Submitter(RedisUrl url, SubmitterOptions options = {});
  /// shutdown().
  ~Submitter();
  Submitter(const Submitter&) = delete;
  Submitter& operator=(const Submitter&) = delete;

  /// A fresh job id: `<submitter id>:<counter>`.
  [[nodiscard]] std::string new_job_id();

  /// Enqueues job `job_id` with `payload`; `on_done` runs once when it ends.
  /// False if a job with this id exists already (a retried submit); its end
  /// is still reported to `on_done` (through the reply stream if it is ours,
  /// else at the next reconcile).
  /// Throws: `ConnectionError` if Redis is unreachable (after one reconnect
  /// and retry): `on_done` will never run, and no job was created unless the
  /// server applied the enqueue and then died before replying (if that job
  /// even ended, and `on_done` ran, while the retry failed, submit returns
  /// true instead of throwing: the job exists);
  /// `PayloadTooLargeError` over `max_payload`; `ShutdownError` after
  /// shutdown(); `CommandError` for an error reply.
  bool submit(std::string_view job_id, std::string_view payload, Callback on_done);

  /// Cancels a pending or scheduled job (its callback then gets `cancelled`).
  /// False if it is running, done or gone. Throws: as submit().
  bool cancel(std::string_view job_id);
  /// Asks a running job to stop (its worker's next heartbeat sees it).
  bool request_stop(std::string_view job_id);

  /// Stops the listener and waits for it (at most about `block` plus the
  /// command timeout). Callbacks not yet run are dropped. Idempotent.
  /// Precondition: not called, and the Submitter not destroyed, from one of
  /// its own callbacks (the listener cannot join itself; known gap, to be
  /// lifted when the redis engine owns it, as the other engines allow).
  void shutdown();

  [[nodiscard]] const std::string& id() const noexcept { return id_; }
  /// Jobs submitted whose callback has not run.
  [[nodiscard]] std::size_t outstanding() const;
  /// How often the listener reconnected, and reconciled.
  [[nodiscard]] std::uint64_t reconnects() const noexcept {
    return reconnects_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t reconciles() const noexcept {
    return reconciles_.load(std::memory_order_relaxed);
  }

 private:
  struct Pending {
    Callback callback;
    bool enqueued = false;  // submit() returned: only then may a missing hash mean "lost"
  };

  void listen();
  /// Reads every enqueued outstanding job's hash; delivers the ended ones.
  void reconcile(Connection& connection);
  /// Runs the callback of `completion.job_id` if it is still outstanding.
  void deliver(Completion completion);
  /// Waits `delay` or until shutdown(); false once shutting down.
  bool pause(std::chrono::milliseconds delay);
  /// Runs `fn(queue, retry)` on the command connection; after a connection
  /// error it reconnects and runs it once more with `retry` true. A function
  /// library lost with the server is reloaded.
  template <typename Fn>
  auto with_commands(Fn&& fn);

  RedisUrl url_;
  SubmitterOptions options_;
  std::string id_;
  std::string reply_key_;
  std::atomic<std::uint64_t> next_job_{0};
  std::atomic<std::uint64_t> reconnects_{0};
  std::atomic<std::uint64_t> reconciles_{0};

  detail::Mutex command_mutex_;
  std::unique_ptr<Connection> commands_ WEBEXEC_GUARDED_BY(command_mutex_);

  mutable detail::Mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ WEBEXEC_GUARDED_BY(mutex_) = false;
  std::map<std::string, Pending, std::less<>> pending_ WEBEXEC_GUARDED_BY(mutex_);

  std::thread listener_;
};

}  // namespace webexec::redis
