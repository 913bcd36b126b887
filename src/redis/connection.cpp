#include "redis/connection.hpp"

#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include <hiredis/hiredis.h>

#include "webexec/config.hpp"

namespace webexec::redis {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string command_name(std::string_view name) { return escape_text(name, 32); }

/// hiredis 0.14 writes with write(2), so a peer that closed the socket would
/// raise SIGPIPE and kill the process. Unless the process ignores SIGPIPE
/// already, the signal is blocked on this thread around each exchange and a
/// SIGPIPE raised meanwhile is consumed before the mask is restored.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) return;
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    active_ = ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask_) == 0;
  }
  ~SigpipeGuard() {
    if (!active_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        const timespec zero{};
        while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t old_mask_{};
  bool active_ = false;
  bool was_pending_ = false;
};

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::nil;
      break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(void* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<void, ReplyDeleter>;

}  // namespace

const std::string& Reply::as_string() const {
  if (type != Type::string && type != Type::status) {
    throw std::logic_error("redis reply is not a string");
  }
  return str;
}

std::int64_t Reply::as_integer() const {
  if (type != Type::integer) throw std::logic_error("redis reply is not an integer");
  return integer;
}

struct Connection::Context {
  redisContext* c = nullptr;
  bool broken = false;
  ~Context() {
    if (c != nullptr) redisFree(c);
  }
};

namespace {
/// A zero timeval means "no timeout" to SO_RCVTIMEO: a command would block forever.
void require_positive(const char* field, std::chrono::milliseconds value) {
  if (value.count() <= 0) {
    throw std::invalid_argument(std::string("redis ConnectOptions.") + field +
                                " must be more than 0 ms, not " + std::to_string(value.count()) +
                                " ms");
  }
}
}  // namespace

Connection::Connection(RedisUrl url, ConnectOptions options)
    : url_(std::move(url)), options_(options), endpoint_(url_.describe()) {
  require_positive("connect_timeout", options_.connect_timeout);
  require_positive("command_timeout", options_.command_timeout);
  open();
}

Connection::~Connection() = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;

void Connection::open() {
  auto ctx = std::make_unique<Context>();
  const timeval connect_tv = to_timeval(options_.connect_timeout);
  ctx->c = url_.transport == RedisUrl::Transport::unix_socket
               ? redisConnectUnixWithTimeout(url_.path.c_str(), connect_tv)
               : redisConnectWithTimeout(url_.host.c_str(), url_.port, connect_tv);
  if (ctx->c == nullptr) {
    throw ConnectionError("redis " + endpoint_ + ": cannot connect: out of memory");
  }
  if (ctx->c->err != 0) {
    throw ConnectionError("redis " + endpoint_ + ": cannot connect within " +
                          std::to_string(options_.connect_timeout.count()) +
                          " ms: " + escape_text(ctx->c->errstr, 128));
  }
  if (redisSetTimeout(ctx->c, to_timeval(options_.command_timeout)) != REDIS_OK) {
    throw ConnectionError("redis " + endpoint_ +
                          ": cannot set the command timeout: " + escape_text(ctx->c->errstr, 128));
  }
  context_ = std::move(ctx);
  const auto refuse = [&](std::string_view what, const Reply& r) {
    context_.reset();
    throw ConnectionError("redis " + endpoint_ + ": " + std::string(what) +
                          " refused: " + escape_text(r.str, 200));
  };
  if (!url_.password.empty()) {
    const Reply r = command({"AUTH", url_.password});
    if (r.is_error()) refuse("AUTH", r);
  }
  if (url_.db != 0) {
    const std::string db = std::to_string(url_.db);
    const Reply r = command({"SELECT", db});
    if (r.is_error()) refuse("SELECT " + db, r);
  }
}

void Connection::reconnect() {
  context_.reset();
  open();
}

bool Connection::broken() const noexcept { return !context_ || context_->broken; }

void Connection::set_timeout(std::chrono::milliseconds timeout) {
  require_positive("command_timeout", timeout);
  options_.command_timeout = timeout;
  if (context_ && !context_->broken) {
    if (redisSetTimeout(context_->c, to_timeval(timeout)) != REDIS_OK) fail_io("(set timeout)");
  }
}

void Connection::fail_io(std::string_view command) {
  std::string why = "connection is broken (reconnect first)";
  if (context_ && context_->c != nullptr && context_->c->err != 0) {
    const int err = context_->c->err;
    const std::string errstr = context_->c->errstr;
    if (err == REDIS_ERR_IO &&
        (errstr.find("Resource temporarily unavailable") != std::string::npos ||
         errstr.find("timed out") != std::string::npos)) {
      why = "no reply within " + std::to_string(options_.command_timeout.count()) + " ms";
    } else if (err == REDIS_ERR_EOF) {
      why = "the server closed the connection";
    } else {
      why = escape_text(errstr, 128);
    }
  }
  if (context_ && context_->broken) {
    why = "the connection broke earlier (" + why + "); reconnect first";
  }
  if (context_) context_->broken = true;
  throw ConnectionError("redis " + endpoint_ + ": " + command_name(command) + " failed: " + why);
}

Reply Connection::command(std::span<const std::string_view> args) {
  const std::string_view name = args.empty() ? std::string_view("(empty)") : args.front();
  if (args.empty()) throw std::invalid_argument("redis: a command needs a name");
  if (broken()) fail_io(name);
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  ReplyPtr reply;
  {
    const SigpipeGuard guard;
    reply.reset(
        redisCommandArgv(context_->c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  }
  if (!reply) fail_io(name);
  return convert(static_cast<const redisReply*>(reply.get()));
}

Reply Connection::call(std::span<const std::string_view> args) {
  Reply r = command(args);
  if (r.is_error()) {
    throw CommandError("redis " + endpoint_ + ": " + command_name(args.front()) +
                           " failed: " + escape_text(r.str, 200),
                       r.str);
  }
  return r;
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  std::vector<Reply> out;
  if (commands.empty()) return out;
  const std::string_view name =
      commands.front().empty() ? std::string_view() : std::string_view(commands.front().front());
  if (broken()) fail_io(name);
  // Every command is checked before the first is appended: a command left
  // unsent after others were would shift every later reply onto the wrong call.
  for (const auto& cmd : commands) {
    if (cmd.empty()) throw std::invalid_argument("redis: a command needs a name");
  }
  const SigpipeGuard guard;
  try {
    for (const auto& cmd : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& a : cmd) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(context_->c, static_cast<int>(argv.size()), argv.data(),
                                 lens.data()) != REDIS_OK) {
        fail_io(cmd.front());
      }
    }
    out.reserve(commands.size());
    for (const auto& cmd : commands) {
      void* raw = nullptr;
      if (redisGetReply(context_->c, &raw) != REDIS_OK || raw == nullptr) fail_io(cmd.front());
      const ReplyPtr reply(raw);
      out.push_back(convert(static_cast<const redisReply*>(reply.get())));
    }
  } catch (...) {
    // Replies may remain unread (or commands unsent): nothing later on this
    // connection can be matched to its reply.
    if (context_) context_->broken = true;
    throw;
  }
  return out;
}

}  // namespace webexec::redis
