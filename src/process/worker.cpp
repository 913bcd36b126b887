// The loop a worker process runs (its only thread, plus any a job starts):
// read a job frame, run the registered job inside the context that came
// with it, write the result or error frame (wire.hpp has the format).
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/context_json.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/detail/mutex.hpp"
#include "webexec/detail/process_pool.hpp"
#include "webexec/errors.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/wire.hpp"

namespace webexec::process::detail {
namespace {

int channel_fd = -1;
webexec::detail::StartSlot* start_slots = nullptr;
std::uint64_t running_job_id = 0;

/// The worker's side of the socket. The host always reads, so blocking
/// writes of started/skipped/result frames cannot deadlock; progress frames
/// never block the job: one the socket cannot take at once waits as the
/// latest (replacing any older one) and goes out before the next result or
/// progress frame. Thread-safe (a job's threads may report progress).
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}

  /// Sends a progress frame if it can without blocking, else keeps it as
  /// the latest.
  void progress(std::string frame) {
    const webexec::detail::MutexLock lock(mutex_);
    if (!flush_nonblocking()) {
      latest_progress_ = std::move(frame);
      return;
    }
    latest_progress_.clear();
    out_ = std::move(frame);
    start_ = 0;
    static_cast<void>(flush_nonblocking());
  }

  /// Sends `frame` (and then `tail`) after whatever is pending. False if
  /// the host is gone.
  bool send(std::string_view frame, std::string_view tail = {}) {
    const webexec::detail::MutexLock lock(mutex_);
    const bool ok = write_all(fd_, std::string_view(out_).substr(start_)) &&
                    write_all(fd_, latest_progress_) && write_all(fd_, frame) &&
                    write_all(fd_, tail);
    out_.clear();
    start_ = 0;
    latest_progress_.clear();
    return ok;
  }

 private:
  /// True once nothing is pending.
  bool flush_nonblocking() WEBEXEC_REQUIRES(mutex_) {
    while (start_ < out_.size()) {
      const ssize_t n =
          ::send(fd_, out_.data() + start_, out_.size() - start_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        start_ += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        return false;  // full (or gone: the next send() says so)
      }
    }
    return true;
  }

  webexec::detail::Mutex mutex_;
  int fd_;
  std::string out_ WEBEXEC_GUARDED_BY(mutex_);  // a frame partly sent
  std::size_t start_ WEBEXEC_GUARDED_BY(mutex_) = 0;
  std::string latest_progress_ WEBEXEC_GUARDED_BY(mutex_);
};

std::string frame(Kind kind, std::uint64_t id, std::string_view body = {}) {
  std::string out;
  append_frame(out, kind, id, 0, body);
  return out;
}

/// Runs the job; moves the arguments out of `request`.
nlohmann::json run_request(Channel& channel, std::uint64_t id, JobMessage& request) {
  const nlohmann::json& ctx = request.ctx;
  // The app of the previous job is reused while the host sends the same
  // name and config and no job changed it: rebuilding costs more than a
  // small job.
  static std::unique_ptr<App> app;
  static nlohmann::json app_json;
  static std::uint64_t app_version = 0;
  static std::string no_app_reason;  // the block keeps a pointer; one job at a time
  App* current = nullptr;
  if (!ctx.at("app").is_null()) {
    if (!app || app->config().version() != app_version || ctx["app"] != app_json) {
      app.reset();
      app = std::make_unique<App>(ctx["app"].at("name").get<std::string>());
      webexec::detail::config_from_json(ctx["app"].at("config"), app->config());
      app_json = ctx["app"];
      app_version = app->config().version();
    }
    current = app.get();
  } else {
    no_app_reason = ctx.value("no_app_reason", std::string());
  }
  std::shared_ptr<const RequestContext> snapshot;
  if (!ctx.at("request").is_null()) {
    snapshot =
        std::make_shared<const RequestContext>(webexec::detail::request_from_json(ctx["request"]));
  }
  webexec::detail::TaskContext task(
      webexec::detail::make_block(current, no_app_reason.c_str(), std::move(snapshot),
                                  webexec::detail::g_from_json(ctx.at("g"))));
  // Progress has somewhere to go only for stored futures.
  std::shared_ptr<webexec::detail::ProgressSlot> progress;
  if (request.progress) {
    const std::uint64_t limit = request.limit;
    progress =
        std::make_shared<webexec::detail::ProgressSlot>([&channel, id, limit](const Progress& p) {
          std::string body = encode_body(progress_to_json(p));
          if (body.size() > limit) return;  // an absurd message: progress is best effort
          channel.progress(frame(Kind::progress, id, body));
        });
  }
  task.set_job(request.label, std::move(progress));
  nlohmann::json result;
  webexec::detail::run_in_context(
      task, [&] { result = JobRegistry::global().invoke(request.job, std::move(request.args)); });
  return result;
}

/// The error frame for the exception `error`, its message cut to fit `limit`.
std::string error_frame(std::uint64_t id, const std::exception_ptr& error, std::uint64_t limit) {
  std::string message = webexec::detail::what(error);
  const std::uint64_t room = limit > 1024 ? limit - 1024 : 0;
  if (message.size() > room) {
    message.resize(static_cast<std::size_t>(room));
    message += " [truncated]";
  }
  return frame(
      Kind::error, id,
      encode_body({{"type", webexec::detail::exception_type(error)}, {"message", message}}));
}

}  // namespace

int current_worker_fd() noexcept { return channel_fd; }

void worker_main(int fd, webexec::detail::StartSlot* slots) {
  channel_fd = fd;
  start_slots = slots;
  tune_worker_allocator();  // wire.hpp: payloads stay in the heap
  Channel channel(fd);
  FrameReader reader(kMaxPayloadCeiling);
  for (;;) {
    std::optional<Frame> next = reader.next();
    if (!next) {
      if (!reader.error().empty()) ::_exit(3);  // the host never sends such bytes
      // One read at a time: the socket blocks, and a frame may be complete.
      if (reader.fill(fd, 1) != FrameReader::Status::ok) ::_exit(0);  // the host left us
      continue;
    }
    if (next->kind != Kind::job || next->slot >= webexec::detail::kSlotsPerWorker) ::_exit(3);
    const std::uint64_t id = next->id;
    // Claim the job's start slot: if the host cancelled it while it waited
    // in this socket, or revoked it (took it back to run it elsewhere),
    // skip it. The host keeps the slot reserved until it reads `skipped`.
    std::uint32_t expected = webexec::detail::kSlotPending;
    if (!start_slots[next->slot].compare_exchange_strong(expected, webexec::detail::kSlotStarted,
                                                         std::memory_order_acq_rel)) {
      if (!channel.send(frame(Kind::skipped, id))) ::_exit(0);
      continue;
    }
    // Tell the host the job started: if this process dies from now on, the
    // job failed here; if it dies before, the host runs the job elsewhere.
    if (!channel.send(frame(Kind::started, id))) ::_exit(0);
    running_job_id = id;
    std::uint64_t limit = kDefaultMaxPayload;
    nlohmann::json result;  // a long string result is sent from here
    OutFrame reply;
    try {
      JobMessage request = decode_job_message(next->body);  // before the next fill()
      limit = request.limit;
      result = run_request(channel, id, request);
      reply = encode_frame(Kind::result, id, result);
      if (const std::size_t size = reply.body_size(); size > limit) {
        throw PayloadTooLargeError(
            "the result of job '" + request.job + "' is " + std::to_string(size) +
            " bytes encoded, over EXECUTOR_MAX_PAYLOAD = " + std::to_string(limit) + " bytes");
      }
    } catch (...) {
      try {
        reply = OutFrame{error_frame(id, std::current_exception(), limit), {}};
      } catch (...) {
        ::_exit(4);  // out of memory even for the message: the host says the job died
      }
    }
    running_job_id = 0;
    if (!channel.send(reply.head, reply.tail)) ::_exit(0);
  }
}

}  // namespace webexec::process::detail

namespace webexec::detail {
std::uint64_t current_worker_job_id() noexcept { return process::detail::running_job_id; }
}  // namespace webexec::detail
