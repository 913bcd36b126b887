/// The redis engine's configuration (internal, not API): every redis key of
/// issue 10 with its default, read through a lookup function with the
/// executor's `NAME_` prefix, by the strict parsers of webexec/config.hpp.
///
/// | key (after the prefix) | field | default |
/// |---|---|---|
/// | `EXECUTOR_REDIS_URL` | `url` | `redis://127.0.0.1:6379/0` |
/// | `EXECUTOR_REDIS_QUEUE` | `queue` | `default` |
/// | `EXECUTOR_REDIS_VISIBILITY_TIMEOUT` | `visibility_timeout` | 30 s |
/// | `EXECUTOR_REDIS_HEARTBEAT` | `heartbeat` | a third of the visibility timeout |
/// | `EXECUTOR_REDIS_MAX_RETRIES` | `max_retries` (0..1000) | 3 |
/// | `EXECUTOR_REDIS_RESULT_TTL` | `result_ttl` | 1 day |
/// | `EXECUTOR_TASK_TIMEOUT` | `task_timeout` | unset: the job time limit is 1 day |
/// | `EXECUTOR_MAX_PAYLOAD` | `max_payload` (1..1 GiB) | 64 MiB |
/// | `EXECUTOR_MAX_WORKERS` | `max_workers` (1..65536) | the number of CPUs |
///
/// Durations are decimal seconds (`2.5`), rounded up to whole milliseconds.
/// The heartbeat must be shorter than the visibility timeout, or a live job's
/// lease would lapse between two heartbeats.
///
/// Thread safety: pure functions (the lookup is called on the caller's thread).
///
/// Example:
/// ```
/// auto o = webexec::redis::parse_redis_options(
///     [&](std::string_view key) { return config.get_string(key); }, "REPORTS_");
/// o.queue;               // REPORTS_EXECUTOR_REDIS_QUEUE, or "default"
/// o.worker_options();    // for a Worker
/// ```
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "redis/protocol.hpp"
#include "redis/submitter.hpp"
#include "redis/url.hpp"
#include "redis/worker.hpp"

namespace webexec::redis {

struct RedisOptions {
  RedisUrl url{};  // parse_redis_options sets it from default_redis_url
  std::string queue = "default";
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds heartbeat{std::chrono::seconds(10)};
  int max_retries = 3;
  std::chrono::milliseconds result_ttl{std::chrono::hours(24)};
  std::optional<std::chrono::milliseconds> task_timeout{};
  std::size_t max_payload = std::size_t{64} << 20U;
  int max_workers = 1;
  /// Not a key: the first retry's delay after a lost worker (doubled per
  /// attempt, up to 25 % jitter, capped at `max_backoff`).
  std::chrono::milliseconds backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};

  /// The protocol's options: max_attempts = max_retries + 1, time_limit =
  /// task_timeout (or 1 day), result_ttl, backoff.
  [[nodiscard]] JobQueueOptions queue_options() const;
  [[nodiscard]] SubmitterOptions submitter_options() const;
  /// With `registry` null: JobRegistry::global().
  [[nodiscard]] WorkerOptions worker_options(const JobRegistry* registry = nullptr) const;
};

/// Looks up a full key (`prefix` + name) and returns its value, if set.
using ConfigLookup = std::function<std::optional<std::string>(std::string_view key)>;

/// Reads every key above as `prefix + key` through `lookup`.
/// Throws: `std::invalid_argument` or `std::out_of_range` naming the key and
/// its value (escaped, the URL's password redacted) and what is wrong; a
/// heartbeat not below the visibility timeout names both keys and values.
RedisOptions parse_redis_options(const ConfigLookup& lookup, std::string_view prefix = {});

}  // namespace webexec::redis
