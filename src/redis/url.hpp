/// `EXECUTOR_REDIS_URL`: where the redis engine connects (internal, not API).
///
/// Two forms, parsed strictly:
///
/// - `redis://[:password@]host[:port][/db]`: host is a name, an IPv4 address
///   or a bracketed IPv6 address; port defaults to 6379 (1..65535); db
///   defaults to 0. The password may be percent-encoded (`%40` for `@`).
/// - `unix:///absolute/path/to/socket[?db=N][&password=P]`.
///
/// `rediss://` is refused: hiredis 0.14 has no TLS. Errors are
/// `std::invalid_argument` naming the key and the value (escaped and
/// truncated like every config error) and saying what is wrong; the password
/// is never shown: the value is echoed with it replaced by `***`.
///
/// Thread safety: pure functions.
///
/// Example:
/// ```
/// auto url = webexec::redis::parse_redis_url("EXECUTOR_REDIS_URL",
///                                            "redis://:s3cret@10.0.0.5:6380/2");
/// url.host;        // "10.0.0.5"
/// url.describe();  // "redis://10.0.0.5:6380/2" (no password)
/// ```
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace webexec::redis {

struct RedisUrl {
  enum class Transport { tcp, unix_socket };
  Transport transport = Transport::tcp;
  /// tcp: the host name or address, without IPv6 brackets.
  std::string host;
  /// tcp: 1..65535.
  int port = 6379;
  /// unix: the absolute socket path.
  std::string path;
  /// Sent with AUTH when not empty. Never printed.
  std::string password;
  /// Sent with SELECT when not 0.
  int db = 0;

  /// The endpoint for messages, without the password:
  /// `redis://host:port/db` or `unix:///path?db=N`.
  [[nodiscard]] std::string describe() const;
};

/// The default of `EXECUTOR_REDIS_URL`.
inline constexpr std::string_view default_redis_url = "redis://127.0.0.1:6379/0";

/// Parses `value`, the value of config key `key`.
/// Throws: `std::invalid_argument` naming `key` and the (password-redacted)
/// value, saying which part is wrong and what was expected.
RedisUrl parse_redis_url(std::string_view key, std::string_view value);

/// `value` with any password replaced by `***`, for messages: everything
/// between `://` and the last `@`, and a `password=` query value.
std::string redact_redis_url(std::string_view value);

}  // namespace webexec::redis
