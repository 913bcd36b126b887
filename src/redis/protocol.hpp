/// The redis engine's job protocol (internal, not API): a versioned Redis
/// Functions library and a thin client over one `Connection`.
///
/// Every transition is one `FCALL` of library `webexec_v1` (functions
/// `webexec_v1_<name>`), with every key it touches declared in KEYS, all under
/// the queue's hash tag `webexec:{<queue>}:`. Functions are persisted in the
/// AOF, so a restarted server needs no reload (no NOSCRIPT). docs/redis.md has
/// the key layout, each transition and the fencing argument.
///
/// - `enqueue(id, payload, reply_to)`: a new pending job and one stream
///   delivery; `reply_to` names the submitter whose reply stream
///   (`replies:<reply_to>`) hears how the job ended.
/// - `claim(consumer)`: XREADGROUP one delivery, then START it. START runs the
///   job only if that delivery is still the job's current one and this
///   consumer still owns it; it bumps `attempt`, the fencing token. A job
///   whose payload is missing is dead-lettered there and then.
/// - `extend(claim)`: renews the lease, refused once the claim is stale or the
///   job's time limit has passed (a hung job is not leased forever).
/// - `finish(claim, ...)`: writes the result only if the claim's token is
///   still the job's attempt and the job is running: a late finish of a
///   revived worker is refused. The same claim finishing twice (a retry after
///   a lost reply) is accepted once and told OK again.
/// - `release(claim)`: hands a running job back at once (a stopping worker).
/// - Every end (finish, dead-lettering, cancel) also XADDs the outcome to the
///   submitter's reply stream in the same call (`Submitter` reads it).
/// - `reap(min_idle)`: XAUTOCLAIMs deliveries idle longer than the lease and
///   requeues each one (one REQUEUE call per job, keys declared): back to the
///   stream, into the schedule with a backoff, or dead-lettered after
///   `max_attempts` starts.
/// - `promote_due()`: moves scheduled jobs whose time has come to the stream.
/// - `cancel(id)`: pending or scheduled jobs only.
///
/// Thread safety: none; one JobQueue per Connection, one per thread.
///
/// Example:
/// ```
/// webexec::redis::JobQueue q(connection, "default");
/// q.load_library();
/// q.enqueue("job-1", payload);
/// if (auto c = q.claim("host:1234:ab")) {  // ClaimResult
///   bool accepted = q.finish(*c, webexec::redis::JobQueue::Outcome::succeeded, "result");
/// }
/// ```
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis/connection.hpp"

namespace webexec::redis {

/// The protocol version, in the library's name, every function's name and
/// every job hash (`v`).
inline constexpr int protocol_version = 1;

struct JobQueueOptions {
  /// How long a job may run (from START) before extend() is refused and the
  /// reaper may take it back.
  std::chrono::milliseconds time_limit{std::chrono::minutes(5)};
  /// Starts before a lost job is dead-lettered (max retries + 1).
  int max_attempts = 4;
  /// Delay of the first retry; doubled per attempt, with up to 25 % jitter,
  /// capped by max_backoff. Zero: straight back to the stream.
  std::chrono::milliseconds backoff{0};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  /// How long a finished or cancelled job's hash is kept.
  std::chrono::milliseconds result_ttl{std::chrono::hours(24)};
  /// How long, and how many, dead jobs are kept.
  std::chrono::milliseconds dead_ttl{std::chrono::hours(24 * 7)};
  int dead_max = 10000;
  /// A submitter's reply stream: trimmed to about this many entries (MAXLEN ~),
  /// and expiring this long after its last entry. Results longer than
  /// `reply_inline_max` bytes stay in the job hash only (the entry says `big`).
  int reply_max_len = 10000;
  std::chrono::milliseconds reply_ttl{std::chrono::hours(1)};
  int reply_inline_max = 16 << 10;
};

/// What claim() or start() found.
enum class ClaimStatus {
  claimed,  ///< started: the Claim holds the job
  empty,    ///< nothing was waiting (or the block timed out)
  stale,    ///< a delivery was read but not started (cancelled, done, requeued, other version)
  dead,     ///< a delivery was read and its job dead-lettered (no payload)
};

/// One started delivery: what finish() and extend() need.
struct Claim {
  std::string job_id;
  std::string sid;       // the stream entry (delivery) id
  std::int64_t token{};  // the attempt number, 1 for the first start
  std::string payload;
  std::string consumer;
  std::string reply_to;  // the submitter, from the delivery (may be empty)
};

/// claim()'s answer: the status, and the claim when `claimed`. Tests as a
/// pointer (`if (auto c = q.claim(w)) c->job_id`).
struct ClaimResult {
  ClaimStatus status = ClaimStatus::empty;
  std::optional<Claim> claim;
  explicit operator bool() const noexcept { return claim.has_value(); }
  Claim& operator*() { return *claim; }
  Claim* operator->() { return &*claim; }
};

/// What reap() did.
struct ReapCounts {
  int requeued = 0;
  int scheduled = 0;
  int dead = 0;
  int dropped = 0;  // deliveries of jobs that were already done, cancelled or requeued
};

/// A fresh id for a submitter or worker: `<host>:<pid>:<12 hex digits>`, the
/// host name reduced to `[A-Za-z0-9.-]` (it becomes part of key names).
std::string make_client_id();

class JobQueue {
 public:
  enum class Outcome { succeeded, failed };

  JobQueue(Connection& connection, std::string queue, JobQueueOptions options = {});

  /// FUNCTION LOAD REPLACE of the library (idempotent).
  void load_library();
  /// The library's source, for tools and tests.
  static std::string_view library_source();

  /// Enqueues a new job. False if a job with this id already exists (a retry
  /// of a submit that did reach the server). `reply_to` (a submitter id, may
  /// be empty) is whose reply stream hears the job's end.
  bool enqueue(std::string_view job_id, std::string_view payload, std::string_view reply_to = {});
  /// Reads one new delivery and starts it. `block` > 0 waits that long for a
  /// delivery (XREADGROUP BLOCK; the connection's timeout must be longer).
  /// `stale` and `dead` mean a delivery was used up without running: the
  /// caller should claim again at once rather than wait.
  ClaimResult claim(std::string_view consumer,
                    std::chrono::milliseconds block = std::chrono::milliseconds(0));
  /// Reads one new delivery without starting it (claim() is read + start()).
  std::optional<Claim> read(std::string_view consumer,
                            std::chrono::milliseconds block = std::chrono::milliseconds(0));
  /// START of a read() delivery; fills `token` and `payload` when `claimed`.
  /// A job whose hash has lost its payload is dead-lettered (`dead`), with no
  /// attempt counted.
  ClaimStatus start(Claim& claim);
  /// Renews the lease. False if the lease is lost (stale token, requeued,
  /// past the time limit). `stop_requested` is set from the job's stop flag.
  bool extend(const Claim& claim, bool* stop_requested = nullptr);
  /// Writes the outcome if `claim` still holds the job, and tells its
  /// submitter. False: fenced off. True again for a retry by the same claim.
  bool finish(const Claim& claim, Outcome outcome, std::string_view result);
  /// Hands a running job back at once: a fresh delivery, state pending (the
  /// attempt stays counted). False if `claim` no longer holds it.
  bool release(const Claim& claim);
  /// Requeues, schedules or dead-letters deliveries idle for `min_idle`.
  ReapCounts reap(std::string_view reaper, std::chrono::milliseconds min_idle, int count = 100);
  /// Promotes due scheduled jobs to the stream; returns how many.
  int promote_due(int count = 100);
  /// Cancels a pending or scheduled job and tells its submitter. False if it
  /// is running, done or gone.
  bool cancel(std::string_view job_id);
  /// Sets a running job's stop flag (read by extend()). False if not running.
  bool request_stop(std::string_view job_id);

  /// Key names, for tests and tools.
  [[nodiscard]] std::string key(std::string_view suffix) const {
    return prefix_ + std::string(suffix);
  }
  [[nodiscard]] std::string job_key(std::string_view job_id) const;
  /// `Q replies:<submitter>`, the reply stream of one submitter.
  [[nodiscard]] std::string reply_key(std::string_view submitter) const;
  [[nodiscard]] const JobQueueOptions& options() const noexcept { return options_; }
  [[nodiscard]] Connection& connection() const noexcept { return connection_; }
  [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }
  static constexpr std::string_view group = "workers";

 private:
  Reply fcall(std::string_view function, std::initializer_list<std::string_view> keys,
              std::initializer_list<std::string_view> args);
  void ensure_group();

  Connection& connection_;
  std::string queue_;
  JobQueueOptions options_;
  std::string prefix_;
};

}  // namespace webexec::redis
