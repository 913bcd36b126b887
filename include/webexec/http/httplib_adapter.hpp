/// webexec for cpp-httplib (Debian's libcpp-httplib-dev 0.11.4), header-only.
///
/// `install(server, app)` makes every handler run inside a request scope, so
/// that `Executor::submit` captures the request: `current_request()` and
/// `g()` then work inside tasks. It owns httplib's single pre- and
/// post-routing slots and chains the hooks you pass in (0.11.4 has no way to
/// read hooks already installed). For apps that keep their own hooks,
/// `wrap(app, handler)` does the same for one route.
///
/// The request is never copied: `httplib::Request::matches` points into the
/// live request and would dangle. The scope keeps a pointer to the live
/// request and builds a `RequestContext` snapshot lazily, at the first
/// submit of the request (the body and match groups do not exist yet when
/// pre-routing runs); all tasks of the request share it. The peer address
/// comes from the socket fields, never from the spoofable synthetic
/// `REMOTE_ADDR` header, and the synthetic headers are dropped.
///
/// Link through the `webexec::httplib` target, which takes httplib's
/// compile definitions from pkg-config: without them `httplib::Request`
/// has another layout and handlers crash.
///
/// Example:
/// ```
/// webexec::App app("service");
/// webexec::Executor executor(app);
/// httplib::Server server;
/// server.set_tcp_nodelay(true);   // Debian's default leaves Nagle on: ~40 ms per response
/// webexec::http::install(server, app);
/// server.Post("/reports", [&](const httplib::Request&, httplib::Response& res) {
///   auto key = webexec::http::new_job_key();
///   executor.submit_stored(key, build_report);   // sees current_request(), g()
///   webexec::http::accepted(res, key, "/jobs");  // 202 + Location: /jobs/<key>
/// });
/// webexec::http::mount_status_routes(server, executor, "/jobs");  // GET and DELETE
/// ```
#pragma once

#include <sys/random.h>
#include <sys/socket.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/demangle.hpp"
#include "webexec/detail/escape.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

namespace webexec::http {

/// Options of `install` and `wrap`.
struct HttplibOptions {
  /// A client-supplied request id is taken from this header (sanitized);
  /// otherwise one is generated.
  std::string request_id_header = "X-Request-Id";
  /// Echo the request id in the response (if the handler did not set it).
  bool echo_request_id = true;
  /// Put a throwing handler's `what()` in its 500 body (`"message"`). Off by
  /// default: exception text can carry internals (paths, SQL, secrets).
  bool expose_exception_messages = false;
  /// If set, receives one access-log line per request (`access_log_line`),
  /// with every control character escaped, on the server thread after the
  /// response is written. A throwing sink is ignored (httplib would abort).
  std::function<void(const std::string& line)> access_log;
  /// A request with more headers than this (the server's synthetic ones
  /// not counted) is answered 431 before any handler runs, so a stored
  /// job's request snapshot never keeps more.
  std::size_t max_headers = 64;
  /// Likewise for the bytes of all header names and values together.
  std::size_t max_header_bytes = 16 * 1024;
  /// Answer 415 to a body with a `Content-Encoding` other than `identity`.
  /// Debian's httplib inflates gzip and brotli bodies, and its payload
  /// limit applies to the compressed size: a 0.5 MB gzip body inflates to
  /// 512 MB. Refused in pre-routing, before the body is read (`install`
  /// only: with `wrap` the body is read before the handler runs).
  bool refuse_compressed_bodies = true;
};

/// The httplib settings that bound what one client can take from the
/// server. `configure(server, options)` applies them; every field has a
/// safe default. The limits are documented in README.md ("Limits").
struct ServerOptions {
  /// Threads that serve connections (httplib's default: max(8, CPUs - 1)).
  /// A thread stays with a connection while it is kept alive, so put the
  /// server behind a proxy that pools connections (deploy/nginx.conf) and
  /// size that pool to this.
  std::size_t threads = 8;
  /// How long a read or a write may stall before the connection is closed
  /// (httplib's default: 5 s). A client that trickles its headers holds a
  /// thread at most this long per read.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(5)};
  /// How long an idle keep-alive connection keeps its thread (default 5 s).
  std::chrono::seconds keep_alive_timeout{2};
  /// Requests per connection before it is closed (httplib's default 5
  /// forces needless reconnects).
  std::size_t keep_alive_max_count = 1000;
  /// The largest request body; larger ones are answered 413 (httplib's
  /// default is unlimited).
  std::size_t max_body_bytes = 64 * 1024;
  /// Debian's build leaves Nagle on: ~40 ms per response without this.
  bool tcp_nodelay = true;
};

/// Applies `options` to `server`. Call before `listen`.
inline void configure(httplib::Server& server, const ServerOptions& options) {
  if (options.threads == 0) throw std::invalid_argument("ServerOptions::threads must be >= 1");
  server.new_task_queue = [n = options.threads] { return new httplib::ThreadPool(n); };
  server.set_read_timeout(options.read_timeout);
  server.set_write_timeout(options.write_timeout);
  server.set_keep_alive_timeout(options.keep_alive_timeout.count());
  server.set_keep_alive_max_count(options.keep_alive_max_count);
  server.set_payload_max_length(options.max_body_bytes);
  server.set_tcp_nodelay(options.tcp_nodelay);
}

/// Options of `mount_status_routes`.
struct StatusRouteOptions {
  /// Include a failed job's `what()` as `error.message` in its status
  /// document. Off by default: only the exception's type is shown.
  bool expose_error_messages = false;
};

/// A request the client got wrong: answered 400 with
/// `{"error": what(), "parameter": parameter()}` by the adapter's exception
/// mapping (`install` and `wrap`). `what()` must not echo client input
/// that could be arbitrary bytes; `int_param` never does.
class BadRequest : public std::invalid_argument {
 public:
  BadRequest(std::string parameter, const std::string& message)
      : std::invalid_argument(message), parameter_(std::move(parameter)) {}
  [[nodiscard]] const std::string& parameter() const noexcept { return parameter_; }

 private:
  std::string parameter_;
};

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

/// Headers httplib 0.11.4 adds itself; a client can send them too.
inline bool is_synthetic_header(std::string_view name) {
  return iequals(name, "REMOTE_ADDR") || iequals(name, "REMOTE_PORT") ||
         iequals(name, "LOCAL_ADDR") || iequals(name, "LOCAL_PORT");
}

/// Keeps [A-Za-z0-9._:-], at most 128 characters; empty if anything else.
inline std::string sanitize_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return {};
  for (const char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) == 0 && c != '-' && c != '_' && c != '.' && c != ':') return {};
  }
  return std::string(id);
}

/// Fills `out` with `size` bytes from the OS CSPRNG (`getrandom(2)`, which
/// blocks only until the kernel's pool is first seeded at boot).
/// Throws: `std::system_error` if the kernel refuses.
inline void os_random_bytes(void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  while (size > 0) {
    const ssize_t n = ::getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

/// Where job keys and generated request ids take their bytes: a test seam,
/// `os_random_bytes` unless a test swaps it. Thread-safe.
using RandomSource = void (*)(void* out, std::size_t size);
inline std::atomic<RandomSource>& random_source() {
  static std::atomic<RandomSource> source{&os_random_bytes};
  return source;
}

/// `bytes` fresh random bytes as 2 * `bytes` lowercase hex digits.
inline std::string random_hex(std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char raw[32];
  if (bytes > sizeof raw) throw std::invalid_argument("random_hex: at most 32 bytes");
  random_source().load(std::memory_order_acquire)(raw, bytes);
  std::string out;
  out.reserve(2 * bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(kHex[raw[i] >> 4U]);
    out.push_back(kHex[raw[i] & 15U]);
  }
  return out;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// application/x-www-form-urlencoded decoding: '+' is a space, %XX a byte.
inline std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

inline std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4U]);
      out.push_back(kHex[u & 15U]);
    }
  }
  return out;
}

inline RequestContext::Params parse_urlencoded(std::string_view text) {
  RequestContext::Params out;
  while (!text.empty()) {
    const std::size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    if (!pair.empty()) {
      const std::size_t eq = pair.find('=');
      out.emplace_back(url_decode(pair.substr(0, eq)), eq == std::string_view::npos
                                                           ? std::string()
                                                           : url_decode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return out;
}

/// The request id for `req`: its sanitized header, or a fresh one.
inline std::string request_id_for(const httplib::Request& req, const HttplibOptions& options) {
  std::string id = sanitize_request_id(req.get_header_value(options.request_id_header.c_str()));
  return id.empty() ? random_hex(8) : id;  // 64 bits of its own draw
}

}  // namespace detail

/// Sets `body` as `res`'s JSON content with `status`. Strings that are not
/// valid UTF-8 (a key decoded from `%FF`) are written with U+FFFD in place
/// of the bad bytes: this never throws for a bad string, unlike
/// `json::dump()`. Throws only `std::bad_alloc`.
inline void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

/// The query or form parameter `name` of `req` as an integer in
/// [`min`, `max`], or `fallback` if absent. Only plain decimal digits are
/// accepted (no sign for positive values, no spaces, '+', decimals or
/// exponents; at most 18 digits), so `1.5`, `+5`, `%00` or `⑤` are refused.
/// Throws: `BadRequest` naming `name` and the range (never the value).
inline std::int64_t int_param(const httplib::Request& req, const std::string& name,
                              std::int64_t fallback, std::int64_t min, std::int64_t max) {
  if (!req.has_param(name.c_str())) return fallback;
  const std::string value = req.get_param_value(name.c_str());
  std::string_view digits = value;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  bool ok = !digits.empty() && digits.size() <= 18 && !(negative && min >= 0);
  std::int64_t n = 0;
  for (const char c : digits) {
    if (!ok) break;
    ok = c >= '0' && c <= '9';
    n = n * 10 + (c - '0');
  }
  if (negative) n = -n;
  if (!ok || n < min || n > max) {
    throw BadRequest(name, "parameter '" + name + "' must be an integer from " +
                               std::to_string(min) + " to " + std::to_string(max));
  }
  return n;
}

/// `text` made safe for one log line: every byte outside printable ASCII
/// (control characters such as CR, LF, ESC, DEL, and all bytes >= 0x80) is
/// written as `\xHH` (`\n`, `\r`, `\t` for the usual three), a double
/// quote as `\x22` and a backslash as `\\`, so client input can never start a forged line or
/// drive a terminal (core's `webexec::detail::Escape::log` rules). Thread-safe.
inline std::string escape_log(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  webexec::detail::escape_into(out, text, SIZE_MAX, webexec::detail::Escape::log);
  return out;
}

/// One access-log line for a handled request, every field escaped with
/// `escape_log`: `<peer> "<METHOD> <decoded path>[?<decoded query>]"
/// <status> <body bytes> id=<X-Request-Id of the response>`. The query is
/// shown decoded (as handlers see it), so `%0A` appears as `\n`.
inline std::string access_log_line(const httplib::Request& req, const httplib::Response& res) {
  std::string target = req.path;
  bool first = true;
  for (const auto& [name, value] : req.params) {
    target += first ? '?' : '&';
    first = false;
    target += name;
    target += '=';
    target += value;
  }
  return escape_log(req.remote_addr) + " \"" + escape_log(req.method) + " " + escape_log(target) +
         "\" " + std::to_string(res.status) + " " + std::to_string(res.body.size()) +
         " id=" + escape_log(res.get_header_value("X-Request-Id"));
}

/// A fresh key for a stored job: 128 bits from the OS CSPRNG
/// (`getrandom`) as 32 lowercase hex digits, so a client cannot guess
/// another client's key. Generated request ids come from separate draws of
/// the same source and reveal nothing about keys. Thread-safe.
/// Throws: `std::system_error` if the kernel refuses randomness.
inline std::string new_job_key() { return detail::random_hex(16); }

/// Builds the value snapshot of `req` (owning every byte). Safe to call
/// from a handler; never keeps a reference to `req`.
inline RequestContext snapshot(const httplib::Request& req, std::string request_id) {
  RequestContext ctx;
  ctx.method = req.method;
  ctx.path = req.path;
  if (const std::size_t q = req.target.find('?'); q != std::string::npos) {
    ctx.query = detail::parse_urlencoded(std::string_view(req.target).substr(q + 1));
  }
  const std::string content_type = req.get_header_value("Content-Type");
  if (content_type.rfind("application/x-www-form-urlencoded", 0) == 0) {
    ctx.form = detail::parse_urlencoded(req.body);
  }
  for (const auto& [name, value] : req.headers) {
    if (!detail::is_synthetic_header(name)) ctx.headers.emplace_back(name, value);
  }
  ctx.body = req.body;
  for (const auto& group : req.matches) ctx.path_groups.push_back(group.str());
  ctx.remote_addr = req.remote_addr;
  ctx.remote_port = req.remote_port;
  ctx.request_id = std::move(request_id);
  return ctx;
}

/// The request scope of one httplib request: a pointer to the live request,
/// its request id and its g. The snapshot is taken at the first submit.
class HttplibRequestScope final : public webexec::detail::RequestScope {
 public:
  HttplibRequestScope(App* app, const httplib::Request* req, std::string request_id)
      : RequestScope(app), req_(req), request_id_(std::move(request_id)) {}

  [[nodiscard]] const std::string& request_id() const noexcept { return request_id_; }

 private:
  [[nodiscard]] std::shared_ptr<const RequestContext> build_snapshot() const override {
    return std::make_shared<const RequestContext>(http::snapshot(*req_, request_id_));
  }

  const httplib::Request* req_;
  std::string request_id_;
};

namespace detail {

/// The scope `install` keeps per server thread, between pre- and post-routing.
struct InstalledScope {
  std::unique_ptr<HttplibRequestScope> scope;
  webexec::detail::RequestScope* previous = nullptr;

  void begin(App* app, const httplib::Request& req, std::string id) {
    end();  // never trust a stale scope
    scope = std::make_unique<HttplibRequestScope>(app, &req, std::move(id));
    previous = std::exchange(webexec::detail::ambient().request, scope.get());
  }
  void end() noexcept {
    if (!scope) return;
    webexec::detail::ambient().request = previous;
    scope.reset();
  }
};

inline InstalledScope& installed_scope() {
  thread_local InstalledScope slot;
  return slot;
}

inline void unknown_job(httplib::Response& res, const std::string& key) {
  send_json(res, {{"key", key}, {"error", "unknown job"}}, 404);
}

/// The adapter's answer to an exception from a handler: `BadRequest` is a
/// 400 naming the parameter, `CapacityError` a 503 with `Retry-After: 1`,
/// anything else is reported to the app and answered with a plain 500.
/// No body carries `what()` unless `options.expose_exception_messages`.
inline void answer_exception(App& app, const httplib::Request& req, httplib::Response& res,
                             const std::exception_ptr& error,
                             const HttplibOptions& options) noexcept {
  try {
    try {
      std::rethrow_exception(error);
    } catch (const BadRequest& e) {
      send_json(res, {{"error", e.what()}, {"parameter", e.parameter()}}, 400);
    } catch (const CapacityError&) {
      res.set_header("Retry-After", "1");
      send_json(res, {{"error", "too many unfinished jobs; retry later"}}, 503);
    } catch (...) {
      app.report_error({.origin = "request handler for " + req.method + " " + req.path,
                        .executor = {},
                        .key = {},
                        .message = webexec::detail::what(error),
                        .exception = error});
      nlohmann::json body = {{"error", "internal server error"}};
      if (options.expose_exception_messages) body["message"] = webexec::detail::what(error);
      send_json(res, body, 500);
    }
  } catch (...) {  // out of memory while answering: the plainest 500
    res.status = 500;
  }
}

/// Answers a request beyond `options`' header limits (431) or with a
/// compressed body (415) and returns true; false if it may proceed.
inline bool refuse_request(const httplib::Request& req, httplib::Response& res,
                           const HttplibOptions& options, bool before_body) {
  std::size_t count = 0;
  std::size_t bytes = 0;
  for (const auto& [name, value] : req.headers) {
    if (is_synthetic_header(name)) continue;
    ++count;
    bytes += name.size() + value.size();
  }
  if (count > options.max_headers || bytes > options.max_header_bytes) {
    send_json(res,
              {{"error", "request header fields too large"},
               {"max_headers", options.max_headers},
               {"max_header_bytes", options.max_header_bytes}},
              431);
    res.set_header("Connection", "close");
    return true;
  }
  if (before_body && options.refuse_compressed_bodies && req.has_header("Content-Encoding") &&
      !iequals(req.get_header_value("Content-Encoding"), "identity")) {
    send_json(res, {{"error", "compressed request bodies are not accepted"}}, 415);
    res.set_header("Connection", "close");
    return true;
  }
  return false;
}

inline void echo_request_id(httplib::Response& res, const HttplibOptions& options,
                            const std::string& id) {
  if (options.echo_request_id && !res.has_header(options.request_id_header.c_str())) {
    res.set_header(options.request_id_header.c_str(), id);
  }
}

}  // namespace detail

/// Installs webexec on `server` for `app`: every request is handled inside
/// a request scope, set in pre-routing and cleared in post-routing. It also
/// installs an exception handler (`detail::answer_exception`): `BadRequest`
/// answers 400 naming the parameter, `CapacityError` 503 with
/// `Retry-After`, anything else is reported to the app's error handler and
/// answers a JSON 500 without the exception's text (httplib's default would
/// put it in a response header) unless `options.expose_exception_messages`.
/// `user_pre` and `user_post` are chained (pre runs after the scope is set,
/// post before it is cleared). A throwing `user_post` is reported to the
/// app's error handler instead of terminating the process, as httplib
/// would. Call once per server, before `listen`.
inline void install(httplib::Server& server, App& app,
                    httplib::Server::HandlerWithResponse user_pre = nullptr,
                    httplib::Server::Handler user_post = nullptr, HttplibOptions options = {}) {
  // httplib's default answer to a throwing handler is a 500 whose
  // EXCEPTION_WHAT header carries what(): internals leak to the client.
  // Report the exception to the app instead and answer a plain JSON 500.
  server.set_exception_handler([&app, options](const httplib::Request& req, httplib::Response& res,
                                               std::exception_ptr error) {
    detail::answer_exception(app, req, res, error, options);
  });
  if (options.access_log) {
    server.set_logger(
        [sink = options.access_log](const httplib::Request& req, const httplib::Response& res) {
          try {
            sink(access_log_line(req, res));
          } catch (...) {  // a throw here would terminate the process
          }
        });
  }
  server.set_pre_routing_handler([&app, user_pre = std::move(user_pre), options](
                                     const httplib::Request& req, httplib::Response& res) {
    detail::installed_scope().begin(&app, req, detail::request_id_for(req, options));
    if (detail::refuse_request(req, res, options, true)) {
      return httplib::Server::HandlerResponse::Handled;
    }
    return user_pre ? user_pre(req, res) : httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_post_routing_handler([&app, user_post = std::move(user_post), options](
                                      const httplib::Request& req, httplib::Response& res) {
    auto& slot = detail::installed_scope();
    try {
      if (slot.scope) detail::echo_request_id(res, options, slot.scope->request_id());
      if (user_post) user_post(req, res);
    } catch (...) {
      app.report_error({.origin = "post-routing hook",
                        .executor = {},
                        .key = {},
                        .message = webexec::detail::what(std::current_exception()),
                        .exception = std::current_exception()});
    }
    slot.end();  // also fine when pre-routing never ran (e.g. a 400)
  });
}

/// Wraps one route's handler in a request scope, for apps that keep their
/// own pre/post-routing hooks. Exceptions are answered as `install` does.
inline httplib::Server::Handler wrap(App& app, httplib::Server::Handler handler,
                                     HttplibOptions options = {}) {
  return [&app, handler = std::move(handler), options](const httplib::Request& req,
                                                       httplib::Response& res) {
    HttplibRequestScope scope(&app, &req, detail::request_id_for(req, options));
    const webexec::detail::ScopedRequest current(&scope);
    try {
      if (!detail::refuse_request(req, res, options, false)) handler(req, res);
    } catch (...) {
      detail::answer_exception(app, req, res, std::current_exception(), options);
    }
    detail::echo_request_id(res, options, scope.request_id());
  };
}

/// Raises the listen backlog of the socket `server` is bound to on `port`.
///
/// cpp-httplib 0.11.4 listens with a backlog of 5, so a burst of new
/// connections (many clients starting to poll at once) gets some of them
/// reset. Call between `bind_to_port` and `listen_after_bind`. The socket
/// is private to httplib, so it is found among the process's descriptors:
/// the listening socket bound to `port`. Returns false if none is found.
inline bool set_listen_backlog(int port, int backlog = 1024) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) {
      continue;
    }
    sockaddr_storage addr{};
    socklen_t addr_len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0) continue;  // NOLINT
    int bound = -1;
    if (addr.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);  // NOLINT
    } else if (addr.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);  // NOLINT
    }
    if (bound == port) return ::listen(fd, backlog) == 0;
  }
  return false;
}

/// Answers 202 Accepted for a stored job: `Location: <prefix>/<key>`,
/// `Retry-After: 1`, body `{"key": ..., "status_url": ...}`.
inline void accepted(httplib::Response& res, std::string_view key,
                     std::string_view prefix = "/jobs") {
  const std::string url = std::string(prefix) + "/" + detail::url_encode(key);
  res.set_header("Location", url);
  res.set_header("Retry-After", "1");
  send_json(res, {{"key", key}, {"status_url", url}}, 202);
}

/// Mounts the job-status routes for `executor.futures()`:
/// - `GET <prefix>/<key>`: 200 with `FutureCollection::status` JSON (key,
///   state, progress, result or error; `Retry-After: 1` while not done), or
///   404 for an unknown key; a failed job shows `error.type`, and
///   `error.message` only with `options.expose_error_messages`;
/// - `DELETE <prefix>/<key>`: cancels the job: 200 if it is now cancelled,
///   409 if it already runs or finished, 404 if unknown.
/// Keys that are not valid UTF-8 are echoed with U+FFFD for the bad bytes.
inline void mount_status_routes(httplib::Server& server, Executor& executor,
                                std::string prefix = "/jobs", StatusRouteOptions options = {}) {
  // Any key, '/' included: accepted() percent-encodes it and httplib
  // decodes the path before matching.
  const std::string pattern = prefix + "/(.+)";
  server.Get(pattern, [&executor, options](const httplib::Request& req, httplib::Response& res) {
    const std::string key = req.matches[1].str();
    auto status = executor.futures().status(key);
    if (!status) {
      detail::unknown_job(res, key);
      return;
    }
    const std::string state = (*status)["state"];
    if (state == "PENDING" || state == "RUNNING") res.set_header("Retry-After", "1");
    if (!options.expose_error_messages && status->contains("error")) {
      (*status)["error"].erase("message");
    }
    send_json(res, *status);
  });
  server.Delete(pattern, [&executor](const httplib::Request& req, httplib::Response& res) {
    const std::string key = req.matches[1].str();
    auto cancelled = executor.futures().cancel(key);
    if (!cancelled) {
      detail::unknown_job(res, key);
      return;
    }
    const auto state = executor.futures().state(key);
    send_json(
        res,
        {{"key", key}, {"cancelled", *cancelled}, {"state", state ? to_string(*state) : "UNKNOWN"}},
        *cancelled ? 200 : 409);
  });
}

}  // namespace webexec::http
