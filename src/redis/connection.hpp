/// One synchronous connection to Redis (internal, not API): RAII over a
/// hiredis `redisContext`, which stays out of this header.
///
/// - Connects over TCP or a Unix socket with a connect timeout, then sends
///   AUTH (if the URL has a password) and SELECT (if db != 0).
/// - Commands are binary safe (`redisCommandArgv` with lengths) and bounded by
///   the command timeout (`redisSetTimeout`), so a stopped or frozen server
///   gives a `ConnectionError`, never a hang.
/// - Replies are copied into an owned `Reply`.
/// - After an I/O error or a timeout the hiredis context cannot be reused:
///   `broken()` turns true, further commands throw, and `reconnect()` makes a
///   new one (AUTH and SELECT again).
///
/// Every error names the endpoint (`RedisUrl::describe()`, no password) and
/// the failing command's name, never its arguments.
///
/// Thread safety: none; use one Connection per thread (as hiredis requires).
///
/// Example:
/// ```
/// auto url = webexec::redis::parse_redis_url("EXECUTOR_REDIS_URL", server_url);
/// webexec::redis::Connection c(url);
/// c.call({"SET", "k", std::string_view("a\0b", 3)});
/// auto r = c.call({"GET", "k"});  // r.type == Reply::Type::string, r.str.size() == 3
/// ```
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "webexec/errors.hpp"

#include "redis/url.hpp"

namespace webexec::redis {

/// The server is unreachable, the connection broke, or a command timed out.
class ConnectionError : public BrokenExecutor {
 public:
  using BrokenExecutor::BrokenExecutor;
};

/// The server answered a command with an error reply (e.g. `NOSCRIPT ...`).
class CommandError : public Error {
 public:
  CommandError(const std::string& what, std::string reply)
      : Error(what), reply_(std::move(reply)) {}
  /// The server's error text, e.g. "NOSCRIPT No matching script".
  [[nodiscard]] const std::string& reply() const noexcept { return reply_; }
  /// Its first word, e.g. "NOSCRIPT", "ERR", "WRONGTYPE".
  [[nodiscard]] std::string code() const { return reply_.substr(0, reply_.find(' ')); }

 private:
  std::string reply_;
};

/// An owned RESP2 reply.
struct Reply {
  enum class Type { nil, integer, string, array, status, error };
  Type type = Type::nil;
  std::int64_t integer = 0;
  /// The bytes of a string, status or error reply.
  std::string str;
  std::vector<Reply> elements;

  [[nodiscard]] bool is_nil() const noexcept { return type == Type::nil; }
  [[nodiscard]] bool is_error() const noexcept { return type == Type::error; }
  /// `str` of a string or status reply. Throws: `std::logic_error` otherwise.
  [[nodiscard]] const std::string& as_string() const;
  /// `integer` of an integer reply. Throws: `std::logic_error` otherwise.
  [[nodiscard]] std::int64_t as_integer() const;
};

struct ConnectOptions {
  std::chrono::milliseconds connect_timeout{2000};
  /// Bounds every command; a blocking command (XREADGROUP BLOCK n) needs more than n.
  std::chrono::milliseconds command_timeout{5000};
};

class Connection {
 public:
  /// Connects, then AUTH and SELECT as the URL says.
  /// Throws: `ConnectionError` if the server is unreachable or refuses AUTH or
  /// SELECT (the message names the endpoint, never the password).
  explicit Connection(RedisUrl url, ConnectOptions options = {});
  ~Connection();
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends one command and returns its reply; an error reply is returned as a
  /// `Reply` of type error.
  /// Throws: `ConnectionError` on I/O errors, timeouts or a broken connection.
  Reply command(std::span<const std::string_view> args);
  Reply command(std::initializer_list<std::string_view> args) {
    return command(std::span<const std::string_view>(args.begin(), args.size()));
  }
  /// command(), but an error reply throws `CommandError`.
  Reply call(std::span<const std::string_view> args);
  Reply call(std::initializer_list<std::string_view> args) {
    return call(std::span<const std::string_view>(args.begin(), args.size()));
  }
  /// Sends every command, then reads every reply (one round trip); error
  /// replies are returned in place. Throws: as command().
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

  /// Changes the command timeout of this connection.
  void set_timeout(std::chrono::milliseconds timeout);
  /// True after an I/O error or timeout: commands throw until reconnect().
  [[nodiscard]] bool broken() const noexcept;
  /// Drops the context and connects again. Throws: as the constructor.
  void reconnect();
  /// The endpoint, for messages: `RedisUrl::describe()`.
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  struct Context;
  [[noreturn]] void fail_io(std::string_view command);
  void open();

  RedisUrl url_;
  ConnectOptions options_;
  std::string endpoint_;
  std::unique_ptr<Context> context_;
};

}  // namespace webexec::redis
