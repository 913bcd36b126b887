// The redis engine's configuration keys, parsed with webexec/config.hpp's strict
// parsers. Runs on the caller's thread (init_app, a worker's startup).
#include "redis/options.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "webexec/config.hpp"

namespace webexec::redis {
namespace {

std::chrono::milliseconds round_up_ms(std::chrono::nanoseconds d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

constexpr auto kDefaultTimeLimit = std::chrono::hours(24);

}  // namespace

RedisOptions parse_redis_options(const ConfigLookup& lookup, std::string_view prefix) {
  RedisOptions o;
  o.url = parse_redis_url("EXECUTOR_REDIS_URL", default_redis_url);
  o.max_workers = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const auto read =
      [&](std::string_view key) -> std::optional<std::pair<std::string, ConfigValue>> {
    std::string full = std::string(prefix) + std::string(key);
    std::optional<std::string> value = lookup(full);
    if (!value) return std::nullopt;
    return std::make_pair(std::move(full), make_config_value(std::move(*value)));
  };

  if (auto v = read("EXECUTOR_REDIS_URL")) {
    o.url = parse_redis_url(v->first, std::get<std::string>(v->second));
  }
  if (auto v = read("EXECUTOR_REDIS_QUEUE")) {
    const std::string& q = std::get<std::string>(v->second);
    const auto bad = [&](const std::string& why) {
      throw std::invalid_argument(v->first + "=" + quote_value(q) + " " + why);
    };
    if (q.empty()) bad("is empty: a queue needs a name");
    if (q.size() > 200) bad("is longer than 200 bytes");
    if (q.find_first_of("{}") != std::string::npos) {
      bad("contains '{' or '}', which would break the queue's hash tag");
    }
    for (const char c : q) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) bad("contains a control character");
    }
    o.queue = q;
  }
  if (auto v = read("EXECUTOR_REDIS_VISIBILITY_TIMEOUT")) {
    o.visibility_timeout = round_up_ms(parse_duration(v->first, v->second));
  }
  std::optional<std::pair<std::string, ConfigValue>> heartbeat = read("EXECUTOR_REDIS_HEARTBEAT");
  if (heartbeat) {
    o.heartbeat = round_up_ms(parse_duration(heartbeat->first, heartbeat->second));
  } else {
    o.heartbeat = std::max(std::chrono::milliseconds(1), o.visibility_timeout / 3);
  }
  if (o.heartbeat >= o.visibility_timeout) {
    const std::string vis = std::string(prefix) + "EXECUTOR_REDIS_VISIBILITY_TIMEOUT";
    throw std::invalid_argument(
        (heartbeat ? heartbeat->first + "=" + quote_value(webexec::to_string(heartbeat->second))
                   : std::string(prefix) + "EXECUTOR_REDIS_HEARTBEAT (default " +
                         std::to_string(o.heartbeat.count()) + " ms)") +
        " must be less than " + vis + " (" + std::to_string(o.visibility_timeout.count()) +
        " ms): a running job's lease would lapse between two heartbeats");
  }
  if (auto v = read("EXECUTOR_REDIS_MAX_RETRIES")) {
    o.max_retries = static_cast<int>(parse_int(v->first, v->second, 0, 1000));
  }
  if (auto v = read("EXECUTOR_REDIS_RESULT_TTL")) {
    o.result_ttl = round_up_ms(parse_duration(v->first, v->second));
  }
  if (auto v = read("EXECUTOR_TASK_TIMEOUT")) {
    o.task_timeout = round_up_ms(parse_duration(v->first, v->second));
  }
  if (auto v = read("EXECUTOR_MAX_PAYLOAD")) {
    o.max_payload = static_cast<std::size_t>(parse_int(v->first, v->second, 1, 1 << 30));
  }
  if (auto v = read("EXECUTOR_MAX_WORKERS")) {
    try {
      o.max_workers = static_cast<int>(parse_int(v->first, v->second, 1, max_worker_threads));
    } catch (const std::out_of_range& e) {
      throw std::out_of_range(std::string(e.what()) + " job threads (EXECUTOR_TYPE=redis)");
    }
  }
  return o;
}

JobQueueOptions RedisOptions::queue_options() const {
  JobQueueOptions q;
  q.time_limit = task_timeout.value_or(kDefaultTimeLimit);
  q.max_attempts = max_retries + 1;
  q.backoff = backoff;
  q.max_backoff = max_backoff;
  q.result_ttl = result_ttl;
  return q;
}

SubmitterOptions RedisOptions::submitter_options() const {
  SubmitterOptions s;
  s.queue = queue;
  s.queue_options = queue_options();
  s.max_payload = max_payload;
  return s;
}

WorkerOptions RedisOptions::worker_options(const JobRegistry* registry) const {
  WorkerOptions w;
  w.queue = queue;
  w.queue_options = queue_options();
  w.threads = max_workers;
  w.visibility_timeout = visibility_timeout;
  w.heartbeat = heartbeat;
  w.max_payload = max_payload;
  w.registry = registry;
  return w;
}

}  // namespace webexec::redis
