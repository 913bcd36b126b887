#include "redis/url.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "webexec/config.hpp"

namespace webexec::redis {
namespace {

constexpr std::string_view kExpected =
    "expected redis://[:password@]host[:port][/db] or unix:///path/to/socket[?db=N]";

/// sockaddr_un::sun_path holds 108 bytes, the terminating NUL included.
constexpr std::size_t kMaxSocketPath = 107;

/// For each byte of `value`, whether it may hold a secret: everything between
/// `://` and the last `@` (with no `@`, the part after the first `:` up to the
/// first `/`, as in `redis://user:secret`), and every query value; a query item
/// not named exactly `db` or `password` may continue a value holding an
/// unescaped `&`, so all of it.
std::vector<bool> secret_mask(std::string_view value) {
  std::vector<bool> mask(value.size(), false);
  std::size_t start = 0;
  if (const auto scheme = value.find("://"); scheme != std::string_view::npos) {
    start = scheme + 3;
  } else if (const auto colon = value.find(':'); colon != std::string_view::npos) {
    start = colon + 1;
  }
  std::size_t end = value.rfind('@');
  if (end == std::string_view::npos || end < start) {
    end = std::min(value.find_first_of("/?", start), value.size());
    const auto colon = value.find(':', start);
    start = colon < end ? colon + 1 : end;
  }
  for (std::size_t i = start; i < end; ++i) mask[i] = true;
  const auto q = value.find('?', start);
  if (q == std::string_view::npos) return mask;
  std::size_t item = q + 1;
  while (item <= value.size()) {
    const std::size_t item_end = std::min(value.find('&', item), value.size());
    const std::size_t eq = value.find('=', item);
    std::size_t from = item;
    if (eq < item_end) {
      const auto name = value.substr(item, eq - item);
      if (name == "db" || name == "password") from = eq + 1;
    }
    for (std::size_t i = from; i < item_end; ++i) mask[i] = true;
    item = item_end + 1;
  }
  return mask;
}

class UrlError {
 public:
  UrlError(std::string_view key, std::string_view value)
      : key_(key), value_(value), mask_(secret_mask(value)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(escape_text(key_) + "=" + quote_value(redact_redis_url(value_)) +
                                " " + what);
  }

  /// `part` (a view into the value) quoted for a message, or `(redacted)` if any
  /// byte of it may hold a secret.
  [[nodiscard]] std::string quote(std::string_view part) const {
    const auto* begin = value_.data();
    if (part.data() >= begin && part.data() + part.size() <= begin + value_.size()) {
      const auto from = static_cast<std::size_t>(part.data() - begin);
      for (std::size_t i = from; i < from + part.size(); ++i) {
        if (mask_[i]) return "(redacted)";
      }
      return quote_value(part);
    }
    return "(redacted)";
  }

 private:
  std::string_view key_;
  std::string_view value_;
  std::vector<bool> mask_;
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// `s` as a decimal number in [0, max], or nullopt (empty, not digits, too big).
std::optional<std::int64_t> decimal(std::string_view s, std::int64_t max) {
  if (!all_digits(s) || s.size() > 12) return std::nullopt;
  std::int64_t n = 0;
  for (const char c : s) n = n * 10 + (c - '0');
  if (n > max) return std::nullopt;
  return n;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Percent-decodes a password; nullopt on a bad escape. The password itself
/// never reaches a message.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool host_name_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_';
}

bool ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
}

int parse_db(const UrlError& err, std::string_view text) {
  const auto db = decimal(text, INT32_MAX);
  if (!db) {
    err.fail("has an invalid database number " + err.quote(text) +
             ": expected an integer from 0 to 2147483647");
  }
  return static_cast<int>(*db);
}

void parse_password(const UrlError& err, std::string_view encoded, RedisUrl& url) {
  if (encoded.empty()) err.fail("has an empty password: omit ':@' or give a password");
  auto password = percent_decode(encoded);
  if (!password) err.fail("has a bad percent escape in its password: expected %XX, two hex digits");
  url.password = std::move(*password);
}

RedisUrl parse_tcp(const UrlError& err, std::string_view rest) {
  RedisUrl url;
  url.transport = RedisUrl::Transport::tcp;
  // Host, port and db cannot hold '@', so the last one ends the user info.
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    if (userinfo.empty() || userinfo.front() != ':') {
      err.fail("has a user name: only a password is supported, as redis://:password@host:port/db");
    }
    parse_password(err, userinfo.substr(1), url);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    err.fail("has a query or fragment, which redis:// URLs do not take; " + std::string(kExpected));
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);

  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) err.fail("has an IPv6 address without its closing ']'");
    const std::string_view host = authority.substr(1, close - 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), ipv6_char) ||
        host.find(':') == std::string_view::npos) {
      err.fail("has an invalid IPv6 address " + err.quote(host));
    }
    url.host = std::string(host);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') err.fail("has text after the IPv6 address: expected ':port'");
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (host.empty()) err.fail("has no host; " + std::string(kExpected));
    if (!std::all_of(host.begin(), host.end(), host_name_char)) {
      err.fail("has an invalid host " + err.quote(host) +
               ": expected a host name, an IPv4 address or [IPv6]");
    }
    url.host = std::string(host);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
  }
  if (has_port) {
    const auto port = decimal(port_text, 65535);
    if (!port || *port == 0) {
      err.fail("has an invalid port " + err.quote(port_text) +
               ": expected an integer from 1 to 65535");
    }
    url.port = static_cast<int>(*port);
  }
  if (!path.empty()) url.db = parse_db(err, path);
  return url;
}

RedisUrl parse_unix(const UrlError& err, std::string_view rest) {
  RedisUrl url;
  url.transport = RedisUrl::Transport::unix_socket;
  if (rest.empty() || rest.front() != '/') {
    err.fail(
        "does not name an absolute socket path: expected unix:///path/to/socket (three "
        "slashes)");
  }
  const auto q = rest.find('?');
  const std::string_view path = rest.substr(0, q);
  if (path.size() < 2) err.fail("has an empty socket path: expected unix:///path/to/socket");
  if (path.find('\0') != std::string_view::npos) err.fail("has a NUL byte in its socket path");
  if (path.find('#') != std::string_view::npos)
    err.fail("has a fragment ('#'), which is not taken");
  if (path.size() > kMaxSocketPath) {
    err.fail("has a socket path of " + std::to_string(path.size()) + " bytes: at most " +
             std::to_string(kMaxSocketPath) + " fit in a Unix socket address");
  }
  url.path = std::string(path);
  if (q == std::string_view::npos) return url;

  std::string_view query = rest.substr(q + 1);
  bool seen_db = false;
  bool seen_password = false;
  while (true) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    const auto eq = param.find('=');
    const std::string_view name = param.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : param.substr(eq + 1);
    if (name == "db" && eq != std::string_view::npos) {
      if (seen_db) err.fail("gives db twice");
      seen_db = true;
      url.db = parse_db(err, value);
    } else if (name == "password" && eq != std::string_view::npos) {
      if (seen_password) err.fail("gives password twice");
      seen_password = true;
      parse_password(err, value, url);
    } else {
      err.fail("has an unknown query parameter " + err.quote(name) +
               ": expected db=N or password=P");
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return url;
}

}  // namespace

std::string RedisUrl::describe() const {
  if (transport == Transport::unix_socket) {
    return "unix://" + path + (db != 0 ? "?db=" + std::to_string(db) : "");
  }
  const bool v6 = host.find(':') != std::string::npos;
  return "redis://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         std::to_string(db);
}

std::string redact_redis_url(std::string_view value) {
  const auto mask = secret_mask(value);
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!mask[i]) {
      out += value[i];
    } else if (i == 0 || !mask[i - 1]) {
      out += "***";
    }
  }
  return out;
}

RedisUrl parse_redis_url(std::string_view key, std::string_view value) {
  const UrlError err(key, value);
  if (value.empty()) err.fail("is empty: " + std::string(kExpected));
  const auto sep = value.find("://");
  if (sep == std::string_view::npos) err.fail("has no scheme: " + std::string(kExpected));
  const std::string scheme = lower(value.substr(0, sep));
  const std::string_view rest = value.substr(sep + 3);
  if (scheme == "redis") return parse_tcp(err, rest);
  if (scheme == "unix") return parse_unix(err, rest);
  if (scheme == "rediss") {
    err.fail(
        "asks for TLS (rediss://), which hiredis 0.14 does not support: use redis:// over "
        "loopback, a private network or a tunnel");
  }
  err.fail("has the unknown scheme " + err.quote(value.substr(0, sep)) + ": " +
           std::string(kExpected));
}

}  // namespace webexec::redis
