// The redis engine's Worker: `threads` job threads (claim, run, finish), one
// heartbeat thread (extend, stop requests, reap, promote), and stop(), which
// runs on its caller's thread.
#include "redis/worker.hpp"

#include <algorithm>
#include <exception>
#include <random>
#include <stdexcept>
#include <utility>

#include "webexec/app.hpp"
#include "webexec/config.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/context_json.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/errors.hpp"

#include "redis/payload.hpp"

namespace webexec::redis {
namespace {

thread_local std::stop_token current_stop;
thread_local std::string current_id;
thread_local std::int64_t current_attempt = 0;

/// Sets the thread's current job for the duration of one run.
class CurrentJob {
 public:
  CurrentJob(const Claim& claim, std::stop_token token) {
    current_stop = std::move(token);
    current_id = claim.job_id;
    current_attempt = claim.token;
  }
  ~CurrentJob() {
    current_stop = {};
    current_id.clear();
    current_attempt = 0;
  }
  CurrentJob(const CurrentJob&) = delete;
  CurrentJob& operator=(const CurrentJob&) = delete;
};

/// Runs registered job `m.job` inside the context that came with it. The app
/// of the previous job on this thread is reused while the same name and
/// config come (rebuilding costs more than a small job).
nlohmann::json run_job(const process::detail::JobMessage& m, const JobRegistry& registry) {
  thread_local std::unique_ptr<App> app;
  thread_local nlohmann::json app_json;
  thread_local std::uint64_t app_version = 0;
  thread_local std::string no_app_reason;  // the block keeps a pointer to it
  const nlohmann::json& ctx = m.ctx;
  const bool has_ctx = ctx.is_object();
  App* current = nullptr;
  if (has_ctx && ctx.contains("app") && !ctx.at("app").is_null()) {
    const nlohmann::json& a = ctx.at("app");
    if (!app || app->config().version() != app_version || a != app_json) {
      app.reset();
      app = std::make_unique<App>(a.at("name").get<std::string>());
      webexec::detail::config_from_json(a.at("config"), app->config());
      app_json = a;
      app_version = app->config().version();
    }
    current = app.get();
  } else {
    no_app_reason = has_ctx ? ctx.value("no_app_reason", std::string()) : std::string();
  }
  std::shared_ptr<const RequestContext> snapshot;
  if (has_ctx && ctx.contains("request") && !ctx.at("request").is_null()) {
    snapshot = std::make_shared<const RequestContext>(
        webexec::detail::request_from_json(ctx.at("request")));
  }
  G g;
  if (has_ctx && ctx.contains("g")) g = webexec::detail::g_from_json(ctx.at("g"));
  webexec::detail::TaskContext task(webexec::detail::make_block(current, no_app_reason.c_str(),
                                                                std::move(snapshot), std::move(g)));
  task.set_job(m.label, nullptr);
  nlohmann::json result;
  webexec::detail::run_in_context(task, [&] { result = registry.invoke(m.job, m.args); });
  return result;
}

std::chrono::milliseconds with_jitter(std::chrono::milliseconds d, std::minstd_rand& rng) {
  std::uniform_int_distribution<long long> jitter(0, d.count() / 2);
  return d + std::chrono::milliseconds(jitter(rng));
}

}  // namespace

std::stop_token current_job_stop_token() noexcept { return current_stop; }
const std::string& current_job_id() noexcept { return current_id; }
std::int64_t current_job_attempt() noexcept { return current_attempt; }

/// One job thread's running job, read by the heartbeat and stop().
struct Worker::Slot {
  bool busy = false;
  Claim lease;  // the claim without its payload
  std::stop_source stop;
  bool released = false;
};

struct Worker::Counters {
  std::atomic<std::uint64_t> started{0}, succeeded{0}, failed{0}, fenced{0}, released{0}, stale{0},
      dead_on_start{0}, stop_requests{0}, requeued{0}, dead{0}, promoted{0};
};

namespace {
void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}
}  // namespace

Worker::Worker(RedisUrl url, WorkerOptions options)
    : url_(std::move(url)),
      options_(std::move(options)),
      id_(options_.id.empty() ? make_client_id() : options_.id),
      registry_(options_.registry != nullptr ? options_.registry : &JobRegistry::global()),
      counters_(std::make_unique<Counters>()) {
  if (options_.threads < 1) {
    throw std::invalid_argument("redis WorkerOptions.threads must be at least 1, not " +
                                std::to_string(options_.threads));
  }
  const auto positive = [](const char* field, std::chrono::milliseconds value) {
    if (value.count() <= 0) {
      throw std::invalid_argument(std::string("redis WorkerOptions.") + field +
                                  " must be more than 0 ms, not " + std::to_string(value.count()) +
                                  " ms");
    }
  };
  positive("visibility_timeout", options_.visibility_timeout);
  positive("heartbeat", options_.heartbeat);
  positive("block", options_.block);
  positive("reconnect_min", options_.reconnect_min);
  positive("reconnect_max", options_.reconnect_max);
  if (options_.heartbeat >= options_.visibility_timeout) {
    throw std::invalid_argument(
        "redis WorkerOptions.heartbeat (" + std::to_string(options_.heartbeat.count()) +
        " ms) must be less than visibility_timeout (" +
        std::to_string(options_.visibility_timeout.count()) + " ms): a lease would expire first");
  }
  if (options_.reap_count < 1) {
    throw std::invalid_argument("redis WorkerOptions.reap_count must be at least 1");
  }
  control_ = std::make_unique<Connection>(url_, options_.connect);
  JobQueue queue(*control_, options_.queue, options_.queue_options);  // validates
  if (options_.load_library) queue.load_library();
  for (int i = 0; i < options_.threads; ++i) slots_.push_back(std::make_unique<Slot>());
  {
    const detail::MutexLock lock(mutex_);
    active_ = options_.threads;
  }
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this, i] { job_thread(i); });
  heartbeat_ = std::thread([this] { heartbeat_thread(); });
}

Worker::~Worker() {
  stop(std::chrono::steady_clock::now());
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

int Worker::busy() const {
  const detail::MutexLock lock(mutex_);
  return busy_;
}

WorkerStats Worker::stats() const {
  const auto get = [](const std::atomic<std::uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  const Counters& c = *counters_;
  return WorkerStats{get(c.started),  get(c.succeeded), get(c.failed),        get(c.fenced),
                     get(c.released), get(c.stale),     get(c.dead_on_start), get(c.stop_requests),
                     get(c.requeued), get(c.dead),      get(c.promoted)};
}

bool Worker::pause(std::chrono::milliseconds delay, bool heartbeat) {
  detail::UniqueLock lock(mutex_);
  return !changed_.wait_for(lock.native(), delay, [&]() WEBEXEC_REQUIRES(mutex_) {
    return heartbeat ? heartbeat_stopping_ : stopping_;
  });
}

void Worker::job_thread(int index) {
  Slot& slot = *slots_[static_cast<std::size_t>(index)];
  const std::string consumer = id_ + ":" + std::to_string(index);
  ConnectOptions connect = options_.connect;
  connect.command_timeout += options_.block;  // XREADGROUP BLOCK is not a timeout
  std::unique_ptr<Connection> connection;
  std::chrono::milliseconds backoff = options_.reconnect_min;
  std::minstd_rand rng{std::random_device{}()};
  for (;;) {
    {
      const detail::MutexLock lock(mutex_);
      if (stopping_) break;
    }
    try {
      if (!connection) {
        connection = std::make_unique<Connection>(url_, connect);
      } else if (connection->broken()) {
        connection->reconnect();
        // The server may have restarted without persistence, losing the library.
        if (options_.load_library) {
          JobQueue(*connection, options_.queue, options_.queue_options).load_library();
        }
      }
      JobQueue queue(*connection, options_.queue, options_.queue_options);
      ClaimResult r = queue.claim(consumer, options_.block);
      backoff = options_.reconnect_min;
      if (r.status == ClaimStatus::stale) bump(counters_->stale);
      if (r.status == ClaimStatus::dead) bump(counters_->dead_on_start);
      if (!r) continue;  // empty: the block was the wait; stale or dead: claim again at once
      run_claim(slot, queue, *r.claim);
    } catch (const std::exception& e) {
      // A server restarted without persistence lost the library too: reload it.
      const auto* command = dynamic_cast<const CommandError*>(&e);
      if (command != nullptr && options_.load_library && connection && !connection->broken() &&
          command->reply().find("Function not found") != std::string::npos) {
        try {
          JobQueue(*connection, options_.queue, options_.queue_options).load_library();
          continue;
        } catch (const std::exception&) {
          // Back off as for any other error.
        }
      }
      // A connection error (or an error reply): back off, reconnect, go on.
      if (!pause(with_jitter(backoff, rng), false)) break;
      backoff = std::min(backoff * 2, options_.reconnect_max);
    }
  }
  {
    const detail::MutexLock lock(mutex_);
    --active_;
  }
  changed_.notify_all();
}

void Worker::run_claim(Slot& slot, JobQueue& queue, Claim& claim) {
  std::stop_token token;
  bool past_deadline = false;
  {
    const detail::MutexLock lock(mutex_);
    slot.busy = true;
    slot.released = false;
    slot.lease = claim;
    slot.lease.payload.clear();
    slot.stop = std::stop_source();
    token = slot.stop.get_token();
    ++busy_;
    past_deadline = deadline_ && std::chrono::steady_clock::now() >= *deadline_;
    if (past_deadline) slot.released = true;
  }
  bump(counters_->started);
  // The slot is freed however this returns (an exception included).
  struct Done {
    Worker& worker;
    Slot& slot;
    Done(Worker& w, Slot& s) : worker(w), slot(s) {}
    Done(const Done&) = delete;
    Done& operator=(const Done&) = delete;
    ~Done() {
      {
        const detail::MutexLock lock(worker.mutex_);
        slot.busy = false;
        --worker.busy_;
      }
      worker.changed_.notify_all();
    }
  } const done{*this, slot};
  if (past_deadline) {
    // Read while stop() waited, started after its deadline: hand it back.
    try {
      if (queue.release(claim)) bump(counters_->released);
    } catch (const std::exception&) {
      // Redelivered after the visibility timeout instead.
    }
    return;
  }

  JobQueue::Outcome outcome = JobQueue::Outcome::failed;
  std::string result;
  // The result limit: the smaller of the submitter's (in the payload) and this
  // worker's own, so a submitter's frame cannot make it store a larger result.
  std::size_t limit = options_.max_payload;
  {
    const CurrentJob current(claim, token);
    try {
      const process::detail::JobMessage m = decode_job_payload(claim.payload, options_.max_payload);
      if (!registry_->contains(m.job)) {
        throw std::invalid_argument("job " + quote_value(m.job) +
                                    " is not registered in redis worker " + id_ +
                                    ": a worker runs only the job names its program registered");
      }
      limit = std::min<std::size_t>(m.limit, options_.max_payload);
      const nlohmann::json value = run_job(m, *registry_);
      result = encode_result(value);
      const std::size_t body = result.size() - process::detail::kHeaderSize;
      if (body > limit) {
        throw PayloadTooLargeError(
            "the result of job '" + m.job + "' is " + std::to_string(body) +
            " bytes encoded, over EXECUTOR_MAX_PAYLOAD = " + std::to_string(limit) + " bytes");
      }
      outcome = JobQueue::Outcome::succeeded;
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      std::string message = webexec::detail::what(error);
      const std::size_t room = limit > 1024 ? limit - 1024 : 0;
      if (message.size() > room) {
        message.resize(room);
        message += " [truncated]";
      }
      result = encode_error(webexec::detail::exception_type(error), message);
      outcome = JobQueue::Outcome::failed;
    }
  }
  claim.payload.clear();

  // FINISH, retried across dropped connections (it is idempotent for this
  // claim) until it is answered, the lease must have been lost anyway (twice
  // the visibility timeout), or stop()'s deadline has passed.
  const auto give_up = std::chrono::steady_clock::now() + 2 * options_.visibility_timeout;
  std::chrono::milliseconds backoff = options_.reconnect_min;
  std::minstd_rand rng{std::random_device{}()};
  for (;;) {
    {
      const detail::MutexLock lock(mutex_);
      if (slot.released) break;  // stop() handed it back: the result is not wanted
    }
    try {
      if (queue.finish(claim, outcome, result)) {
        bump(outcome == JobQueue::Outcome::succeeded ? counters_->succeeded : counters_->failed);
      } else {
        bump(counters_->fenced);
      }
      break;
    } catch (const std::exception&) {
      bool past = false;
      {
        const detail::MutexLock lock(mutex_);
        past = deadline_ && std::chrono::steady_clock::now() >= *deadline_;
      }
      if (past || std::chrono::steady_clock::now() >= give_up) break;
      {
        detail::UniqueLock lock(mutex_);
        changed_.wait_for(lock.native(), with_jitter(backoff, rng));
      }
      backoff = std::min(backoff * 2, options_.reconnect_max);
      try {
        queue.connection().reconnect();
      } catch (const std::exception&) {
        // Still down: try again after the next wait.
      }
    }
  }
}

void Worker::heartbeat_thread() {
  std::unique_ptr<Connection> connection;
  const std::string reaper = id_ + ":reaper";
  while (pause(options_.heartbeat, true)) {
    try {
      if (!connection) {
        connection = std::make_unique<Connection>(url_, options_.connect);
      } else if (connection->broken()) {
        connection->reconnect();
      }
      JobQueue queue(*connection, options_.queue, options_.queue_options);
      std::vector<std::pair<Slot*, Claim>> leases;
      {
        const detail::MutexLock lock(mutex_);
        for (auto& s : slots_) {
          if (s->busy && !s->released) leases.emplace_back(s.get(), s->lease);
        }
      }
      for (auto& [slot, lease] : leases) {
        bool stop_requested = false;
        const bool held = queue.extend(lease, &stop_requested);
        if (held && !stop_requested) continue;
        // Stop requested by a replica, or the lease is lost (stale, past the
        // time limit): the job's result would be fenced off anyway.
        const detail::MutexLock lock(mutex_);
        if (slot->busy && slot->lease.token == lease.token && slot->lease.sid == lease.sid &&
            slot->stop.request_stop()) {
          bump(counters_->stop_requests);
        }
      }
      const ReapCounts reaped =
          queue.reap(reaper, options_.visibility_timeout, options_.reap_count);
      bump(counters_->requeued, static_cast<std::uint64_t>(reaped.requeued + reaped.scheduled));
      bump(counters_->dead, static_cast<std::uint64_t>(reaped.dead));
      bump(counters_->promoted, static_cast<std::uint64_t>(queue.promote_due(options_.reap_count)));
    } catch (const std::exception&) {
      // The next beat reconnects. A lease that lapses meanwhile is fenced.
    }
  }
}

bool Worker::stop(std::chrono::steady_clock::time_point deadline) {
  const detail::MutexLock stop_lock(stop_mutex_);
  {
    const detail::MutexLock lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      deadline_ = deadline;
    }
    deadline = *deadline_;
  }
  changed_.notify_all();
  bool finished = false;
  {
    detail::UniqueLock lock(mutex_);
    finished = changed_.wait_until(lock.native(), deadline,
                                   [&]() WEBEXEC_REQUIRES(mutex_) { return active_ == 0; });
  }
  if (!finished) {
    std::vector<Claim> leases;
    {
      const detail::MutexLock lock(mutex_);
      for (auto& s : slots_) {
        if (!s->busy || s->released) continue;
        s->released = true;
        if (s->stop.request_stop()) bump(counters_->stop_requests);
        leases.push_back(s->lease);
      }
    }
    for (const Claim& lease : leases) {
      try {
        if (control_->broken()) control_->reconnect();
        JobQueue queue(*control_, options_.queue, options_.queue_options);
        if (queue.release(lease)) bump(counters_->released);
      } catch (const std::exception&) {
        // Redis is down: the job is redelivered after the visibility timeout.
      }
    }
  }
  {
    const detail::MutexLock lock(mutex_);
    heartbeat_stopping_ = true;
  }
  changed_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  return finished;
}

}  // namespace webexec::redis
