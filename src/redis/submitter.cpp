// The redis engine's Submitter: enqueue, cancel and stop requests on the
// callers' threads (one command connection under a mutex), and the listener
// thread that reads this submitter's reply stream and runs the callbacks.
#include "redis/submitter.hpp"

#include <algorithm>
#include <exception>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "webexec/errors.hpp"

namespace webexec::redis {
namespace {

bool end_from_state(std::string_view state, JobEnd& end) {
  if (state == "succeeded") {
    end = JobEnd::succeeded;
  } else if (state == "failed") {
    end = JobEnd::failed;
  } else if (state == "cancelled") {
    end = JobEnd::cancelled;
  } else if (state == "dead") {
    end = JobEnd::dead;
  } else {
    return false;
  }
  return true;
}

bool function_missing(const CommandError& e) {
  return e.reply().find("Function not found") != std::string::npos;
}

}  // namespace

std::string_view to_string(JobEnd end) noexcept {
  switch (end) {
    case JobEnd::succeeded:
      return "succeeded";
    case JobEnd::failed:
      return "failed";
    case JobEnd::cancelled:
      return "cancelled";
    case JobEnd::dead:
      return "dead";
    case JobEnd::lost:
      return "lost";
  }
  return "lost";
}

Submitter::Submitter(RedisUrl url, SubmitterOptions options)
    : url_(std::move(url)),
      options_(std::move(options)),
      id_(options_.id.empty() ? make_client_id() : options_.id) {
  if (id_.find_first_of("{}") != std::string::npos) {
    throw std::invalid_argument("redis submitter id must not contain '{' or '}'");
  }
  const auto positive = [](const char* field, std::chrono::milliseconds value) {
    if (value.count() <= 0) {
      throw std::invalid_argument(std::string("redis SubmitterOptions.") + field +
                                  " must be more than 0 ms, not " + std::to_string(value.count()) +
                                  " ms");
    }
  };
  positive("block", options_.block);
  positive("reconnect_min", options_.reconnect_min);
  positive("reconnect_max", options_.reconnect_max);
  positive("reconcile_every", options_.reconcile_every);
  {
    const detail::MutexLock lock(command_mutex_);
    commands_ = std::make_unique<Connection>(url_, options_.connect);
    JobQueue queue(*commands_, options_.queue, options_.queue_options);  // validates
    reply_key_ = queue.reply_key(id_);
    if (options_.load_library) queue.load_library();
  }
  listener_ = std::thread([this] { listen(); });
}

Submitter::~Submitter() { shutdown(); }

void Submitter::shutdown() {
  {
    const detail::MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (listener_.joinable()) listener_.join();
}

std::string Submitter::new_job_id() {
  return id_ + ":" + std::to_string(next_job_.fetch_add(1, std::memory_order_relaxed) + 1);
}

std::size_t Submitter::outstanding() const {
  const detail::MutexLock lock(mutex_);
  return pending_.size();
}

template <typename Fn>
auto Submitter::with_commands(Fn&& fn) {
  const detail::MutexLock lock(command_mutex_);
  // Taken under the lock: the analysis does not see the lock inside the lambda.
  Connection& commands = *commands_;
  const auto once = [&] {
    if (commands.broken()) commands.reconnect();  // throws ConnectionError if still down
    JobQueue queue(commands, options_.queue, options_.queue_options);
    try {
      return fn(queue, false);
    } catch (const CommandError& e) {
      if (!function_missing(e)) throw;
      // The server restarted without persistence: the library is gone too.
      queue.load_library();
      return fn(queue, false);
    }
  };
  try {
    return once();
  } catch (const ConnectionError&) {
    // A connection the server closed is only found broken by the next command:
    // reconnect and try once more (each call is safe to repeat). A second
    // failure is the caller's clear error.
    commands_->reconnect();
    JobQueue queue(*commands_, options_.queue, options_.queue_options);
    return fn(queue, true);
  }
}

bool Submitter::submit(std::string_view job_id, std::string_view payload, Callback on_done) {
  if (payload.size() > options_.max_payload) {
    throw PayloadTooLargeError(
        "job " + std::string(job_id) + " is " + std::to_string(payload.size()) +
        " bytes encoded, over EXECUTOR_MAX_PAYLOAD = " + std::to_string(options_.max_payload) +
        " bytes");
  }
  {
    // Registered before the enqueue: the job may end before enqueue returns.
    const detail::MutexLock lock(mutex_);
    if (stopping_) throw ShutdownError("redis submitter " + id_ + " is shut down");
    if (pending_.count(job_id) != 0) {
      throw std::invalid_argument("redis job id " + std::string(job_id) + " is already waiting");
    }
    pending_.emplace(std::string(job_id), Pending{std::move(on_done), false});
  }
  bool created = false;
  try {
    // A retry that finds the job was created by the first try, whose reply was lost.
    created = with_commands(
        [&](JobQueue& q, bool retry) { return q.enqueue(job_id, payload, id_) || retry; });
  } catch (...) {
    // No callback for a job whose submit threw. A reply lost after the server
    // applied the enqueue is the one case where the job may exist anyway; if
    // its callback has already run (the listener delivered its end while the
    // retry failed), the job certainly exists and ended: report it as created.
    const detail::MutexLock lock(mutex_);
    const auto it = pending_.find(job_id);
    if (it == pending_.end()) return true;
    pending_.erase(it);
    throw;
  }
  const detail::MutexLock lock(mutex_);
  if (auto it = pending_.find(job_id); it != pending_.end()) it->second.enqueued = true;
  return created;
}

bool Submitter::cancel(std::string_view job_id) {
  return with_commands([&](JobQueue& q, bool /*retry*/) { return q.cancel(job_id); });
}

bool Submitter::request_stop(std::string_view job_id) {
  return with_commands([&](JobQueue& q, bool /*retry*/) { return q.request_stop(job_id); });
}

void Submitter::deliver(Completion completion) {
  Callback callback;
  {
    const detail::MutexLock lock(mutex_);
    const auto it = pending_.find(completion.job_id);
    if (it == pending_.end()) return;  // delivered already (stream and reconcile both saw it)
    callback = std::move(it->second.callback);
    pending_.erase(it);
  }
  try {
    if (callback) callback(std::move(completion));
  } catch (...) {
    // A callback's exception is dropped, as for every future callback.
  }
}

bool Submitter::pause(std::chrono::milliseconds delay) {
  detail::UniqueLock lock(mutex_);
  return !wake_.wait_for(lock.native(), delay,
                         [this]() WEBEXEC_REQUIRES(mutex_) { return stopping_; });
}

void Submitter::reconcile(Connection& connection) {
  reconciles_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::string> ids;
  {
    const detail::MutexLock lock(mutex_);
    for (const auto& [id, p] : pending_) {
      if (p.enqueued) ids.push_back(id);
    }
  }
  const JobQueue queue(connection, options_.queue, options_.queue_options);
  constexpr std::size_t kBatch = 256;
  for (std::size_t start = 0; start < ids.size(); start += kBatch) {
    const std::size_t end = std::min(ids.size(), start + kBatch);
    std::vector<std::vector<std::string>> commands;
    for (std::size_t i = start; i < end; ++i) {
      commands.push_back({"HMGET", queue.job_key(ids[i]), "state", "result"});
    }
    std::vector<Reply> replies = connection.pipeline(commands);
    for (std::size_t i = start; i < end; ++i) {
      Reply& r = replies[i - start];
      if (r.elements.size() != 2) continue;
      Completion c;
      c.job_id = ids[i];
      if (r.elements[0].is_nil()) {
        c.end = JobEnd::lost;
        c.result =
            "the job's hash is gone (expired, or lost with a redis-server without "
            "persistence)";
      } else if (!end_from_state(r.elements[0].str, c.end)) {
        continue;  // still pending, scheduled or running
      } else {
        c.result = std::move(r.elements[1].str);
      }
      deliver(std::move(c));
    }
  }
}

void Submitter::listen() {
  ConnectOptions connect = options_.connect;
  connect.command_timeout += options_.block;  // XREAD BLOCK must not look like a timeout
  std::unique_ptr<Connection> connection;
  std::string last = "0-0";
  std::chrono::milliseconds backoff = options_.reconnect_min;
  std::minstd_rand rng{std::random_device{}()};
  auto next_reconcile = std::chrono::steady_clock::now() + options_.reconcile_every;
  bool reconcile_now = false;
  const std::string block = std::to_string(options_.block.count());
  for (;;) {
    {
      const detail::MutexLock lock(mutex_);
      if (stopping_) return;
    }
    try {
      if (!connection || connection->broken()) {
        if (connection) {
          connection->reconnect();
          reconnects_.fetch_add(1, std::memory_order_relaxed);
        } else {
          connection = std::make_unique<Connection>(url_, connect);
        }
        reconcile_now = true;
      }
      backoff = options_.reconnect_min;
      if (reconcile_now || std::chrono::steady_clock::now() >= next_reconcile) {
        reconcile(*connection);
        reconcile_now = false;
        next_reconcile = std::chrono::steady_clock::now() + options_.reconcile_every;
      }
      const Reply r =
          connection->call({"XREAD", "COUNT", "256", "BLOCK", block, "STREAMS", reply_key_, last});
      if (r.is_nil() || r.elements.empty()) continue;
      const auto& entries = r.elements.at(0).elements.at(1).elements;
      std::vector<std::string> big;
      for (const auto& entry : entries) {
        last = entry.elements.at(0).str;
        Completion c;
        bool is_big = false;
        bool known = false;
        const auto& fields = entry.elements.at(1).elements;
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
          const std::string& f = fields[i].str;
          if (f == "job") c.job_id = fields[i + 1].str;
          if (f == "state") known = end_from_state(fields[i + 1].str, c.end);
          if (f == "result") c.result = fields[i + 1].str;
          if (f == "big") is_big = true;
        }
        if (!known) continue;
        if (is_big) {
          // The result stayed in the hash; reading the hash gives the end too.
          big.push_back(std::move(c.job_id));
          continue;
        }
        deliver(std::move(c));
      }
      if (!big.empty()) {
        const JobQueue queue(*connection, options_.queue, options_.queue_options);
        for (const auto& id : big) {
          Reply h = connection->call({"HMGET", queue.job_key(id), "state", "result"});
          Completion c;
          c.job_id = id;
          if (h.elements.size() == 2 && !h.elements[0].is_nil() &&
              end_from_state(h.elements[0].str, c.end)) {
            c.result = std::move(h.elements[1].str);
          } else {
            c.end = JobEnd::lost;
            c.result = "the job's hash is gone before its result was read";
          }
          deliver(std::move(c));
        }
      }
      // What was read is not needed again: keep the stream short.
      static_cast<void>(connection->command({"XTRIM", reply_key_, "MINID", last}));
    } catch (const ConnectionError&) {
      // Reconnect with capped exponential backoff and jitter; resume from `last`.
      std::uniform_int_distribution<long long> jitter(0, backoff.count() / 2);
      if (!pause(backoff + std::chrono::milliseconds(jitter(rng)))) return;
      backoff = std::min(backoff * 2, options_.reconnect_max);
    } catch (const std::exception&) {
      // An error reply (e.g. WRONGTYPE on the reply key) or a malformed reply:
      // wait a little and reconcile from the hashes, which is always correct.
      reconcile_now = true;
      if (!pause(options_.reconnect_max)) return;
    }
  }
}

}  // namespace webexec::redis
