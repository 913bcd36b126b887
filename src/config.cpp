#include "webexec/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "webexec/detail/escape.hpp"

namespace webexec {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string describe(std::string_view key, const ConfigValue& value) {
  std::string out = escape_text(key);
  out += "=";
  if (const auto* s = std::get_if<std::string>(&value)) {
    out += quote_value(*s);
  } else {
    out += to_string(value);
  }
  return out;
}

/// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no
/// overlong forms, no surrogates, at most U+10FFFF), or 0; its code point in
/// `cp`.
std::size_t utf8_sequence(std::string_view s, char32_t& cp) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n = 0;
  char32_t min = 0;
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1Fu, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0Fu, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (b(i) & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

/// Code points that move or break a line when shown: C1 controls, LRM/RLM,
/// ALM, the line/paragraph separators and the bidi embeddings and isolates.
bool invisible_control(char32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
         (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

void append_hex(std::string& out, const char* prefix, unsigned value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += prefix;
  for (int i = digits - 1; i >= 0; --i) out += kHex[(value >> (4 * i)) & 0xFu];
}

}  // namespace

namespace detail {

bool escape_into(std::string& out, std::string_view text, std::size_t max_bytes, Escape rules) {
  // Log lines take every byte alone: no multi-byte character is kept.
  const bool ascii = rules == Escape::log;
  std::size_t i = 0;
  while (i < text.size()) {
    char32_t cp = static_cast<unsigned char>(text[i]);
    const std::size_t n = ascii ? 1 : utf8_sequence(text.substr(i), cp);
    const std::size_t unit = n == 0 ? 1 : n;
    if (i + unit > max_bytes) return false;
    if (n == 0 || (ascii && (cp >= 0x80 || cp == '"'))) {
      append_hex(out, "\\x", static_cast<unsigned char>(text[i]), 2);
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\'' && !ascii) {
      out += "\\'";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F) {
      append_hex(out, "\\x", static_cast<unsigned>(cp), 2);
    } else if (invisible_control(cp)) {
      append_hex(out, "\\u", static_cast<unsigned>(cp), 4);
    } else {
      out.append(text.substr(i, n));
    }
    i += unit;
  }
  return true;
}

}  // namespace detail

namespace {

/// Numeric text split by the one grammar every numeric key uses:
/// `[+-]int[.frac][(e|E)[+-]exp]`, no whitespace anywhere.
struct DecimalText {
  bool negative = false;
  std::string_view int_digits;   // before the point
  std::string_view frac_digits;  // after the point
  bool has_point = false;
  std::string_view exponent;  // digits after 'e' and its sign, if any
  bool exponent_negative = false;
  bool has_exponent = false;
};

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// `s` split as DecimalText, or nullopt if it is not of that shape. Without
/// `real`, only `[+-]digits` is accepted.
std::optional<DecimalText> scan_decimal(std::string_view s, bool real) {
  DecimalText out;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    out.negative = s.front() == '-';
    s.remove_prefix(1);
  }
  std::string_view mantissa = s;
  if (real) {
    if (const auto e = s.find_first_of("eE"); e != std::string_view::npos) {
      mantissa = s.substr(0, e);
      std::string_view exp = s.substr(e + 1);
      if (!exp.empty() && (exp.front() == '+' || exp.front() == '-')) {
        out.exponent_negative = exp.front() == '-';
        exp.remove_prefix(1);
      }
      if (exp.empty() || !all_digits(exp)) return std::nullopt;
      out.exponent = exp;
      out.has_exponent = true;
    }
    if (const auto point = mantissa.find('.'); point != std::string_view::npos) {
      out.has_point = true;
      out.frac_digits = mantissa.substr(point + 1);
      mantissa = mantissa.substr(0, point);
    }
  }
  out.int_digits = mantissa;
  if (out.int_digits.empty() && out.frac_digits.empty()) return std::nullopt;
  if (!all_digits(out.int_digits) || !all_digits(out.frac_digits)) return std::nullopt;
  return out;
}

/// The decimal exponent of the number's leading digit (1.5 -> 0, 0.01 -> -2,
/// 1e400 -> 400), saturated; only its sign matters when from_chars reports a
/// value beyond double. Zero gives INT64_MIN.
std::int64_t magnitude(const DecimalText& d) {
  constexpr std::int64_t kCap = std::int64_t{1} << 40;
  std::int64_t exp = 0;
  for (const char c : d.exponent) {
    exp = std::min(kCap, exp * 10 + (c - '0'));
  }
  if (d.exponent_negative) exp = -exp;
  const auto int_start = d.int_digits.find_first_not_of('0');
  if (int_start != std::string_view::npos) {
    return exp + static_cast<std::int64_t>(d.int_digits.size() - int_start) - 1;
  }
  const auto frac_start = d.frac_digits.find_first_not_of('0');
  if (frac_start == std::string_view::npos) return INT64_MIN;
  return exp - static_cast<std::int64_t>(frac_start) - 1;
}

/// `ns` as exact decimal seconds: 1000000 -> "0.001", 31536000000000000 ->
/// "31536000".
std::string format_seconds(std::chrono::nanoseconds ns) {
  const auto count = ns.count();
  std::string out = std::to_string(count / 1'000'000'000);
  auto frac = count % 1'000'000'000;
  if (frac < 0) frac = -frac;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 9 - digits.size(), '0');
    digits.erase(digits.find_last_not_of('0') + 1);
    out += "." + digits;
  }
  return out;
}

[[noreturn]] void throw_below(std::string_view key, const ConfigValue& value,
                              const std::string& minimum) {
  throw std::out_of_range(describe(key, value) + " is below the minimum of " + minimum);
}

[[noreturn]] void throw_above(std::string_view key, const ConfigValue& value,
                              const std::string& maximum) {
  throw std::out_of_range(describe(key, value) + " is above the maximum of " + maximum);
}

}  // namespace

std::string escape_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 2);
  if (!detail::escape_into(out, text, max_bytes, detail::Escape::text)) {
    out += "... (" + std::to_string(text.size()) + " bytes)";
  }
  return out;
}

std::string quote_value(std::string_view text, std::size_t max_bytes) {
  std::string out = "'";
  const bool whole = detail::escape_into(out, text, max_bytes, detail::Escape::text);
  out += "'";
  if (!whole) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

namespace detail {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const auto up = [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  };
  // Three rows of the optimal-string-alignment table.
  std::vector<std::size_t> before(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = up(a[i - 1]) == up(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && up(a[i - 1]) == up(b[j - 2]) && up(a[i - 2]) == up(b[j - 1])) {
        cur[j] = std::min(cur[j], before[j - 2] + 1);
      }
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<MisspeltKey> misspelt_keys(const std::vector<std::string>& config_keys,
                                       std::string_view prefix,
                                       const std::vector<std::string>& known, bool environment) {
  const std::string own = lower(std::string(prefix) + "EXECUTOR");
  std::vector<std::string> full;
  full.reserve(known.size());
  for (const auto& k : known) full.push_back(std::string(prefix) + k);
  const auto candidate = [&](std::string_view key) {
    if (key.size() < own.size() || lower(key.substr(0, own.size())) != own) return false;
    for (const auto& k : full) {
      if (key == k) return false;
      // OTHER_<own key>: another executor's valid key.
      if (key.size() > k.size() + 1 && key.ends_with(k) && key[key.size() - k.size() - 1] == '_') {
        return false;
      }
    }
    return true;
  };
  std::vector<MisspeltKey> out;
  const auto check = [&](std::string_view key, bool from_env) {
    if (!candidate(key) || full.empty()) return;
    // Nearest by edit distance; on a tie, a key that contains the typed
    // rest (TIMEOUT in TASK_TIMEOUT) beats one that does not (TYPE).
    const std::string rest = lower(key.substr(own.size()));
    std::pair<std::size_t, bool> best{SIZE_MAX, true};
    const std::string* nearest = nullptr;
    for (const auto& k : full) {
      const std::pair<std::size_t, bool> score{edit_distance(key, k),
                                               lower(k).find(rest) == std::string::npos};
      if (score < best) best = score, nearest = &k;
    }
    if (from_env && prefix.empty() && best.first > 2) return;
    out.push_back({std::string(key), *nearest, from_env});
  };
  for (const auto& key : config_keys) check(key, false);
  if (environment) {
    for (char** env = environ; env != nullptr && *env != nullptr; ++env) {
      const std::string_view entry(*env);
      check(entry.substr(0, entry.find('=')), true);
    }
  }
  return out;
}

}  // namespace detail

std::string to_string(const ConfigValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  return std::get<bool>(value) ? "true" : "false";
}

bool parse_bool(std::string_view key, const ConfigValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    if (*i == 0 || *i == 1) return *i == 1;
  } else {
    const std::string s = lower(std::get<std::string>(value));
    if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  }
  throw std::invalid_argument("invalid boolean " + describe(key, value) +
                              ": expected true/false, 1/0, yes/no or on/off");
}

std::int64_t parse_int(std::string_view key, const ConfigValue& value, std::int64_t min,
                       std::int64_t max) {
  std::int64_t result = 0;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    result = *i;
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    if (s->empty()) {
      throw std::invalid_argument(describe(key, value) + " is empty: expected an integer");
    }
    const auto text = scan_decimal(*s, false);
    if (!text) {
      throw std::invalid_argument(describe(key, value) +
                                  " is not an integer: expected decimal digits with an optional "
                                  "sign, such as 4 (no spaces, no hex, no fraction)");
    }
    // from_chars takes '-' but not '+'; the sign was checked by scan_decimal.
    const char* first = s->data() + (s->front() == '+' ? 1 : 0);
    const char* last = s->data() + s->size();
    const auto [end, ec] = std::from_chars(first, last, result);
    if (ec == std::errc::result_out_of_range) {
      if (text->negative) throw_below(key, value, std::to_string(min));
      throw_above(key, value, std::to_string(max));
    }
    if (ec != std::errc() || end != last) {
      throw std::invalid_argument(describe(key, value) + " is not an integer");
    }
  } else {
    throw std::invalid_argument(describe(key, value) + " is a boolean, not an integer");
  }
  if (result < min) throw_below(key, value, std::to_string(min));
  if (result > max) throw_above(key, value, std::to_string(max));
  return result;
}

std::chrono::nanoseconds parse_duration(std::string_view key, const ConfigValue& value,
                                        std::chrono::nanoseconds min,
                                        std::chrono::nanoseconds max) {
  using std::chrono::nanoseconds;
  if (min <= nanoseconds::zero() || max < min) {
    throw std::invalid_argument("parse_duration(" + std::string(key) +
                                "): the bounds must satisfy 0 < min <= max");
  }
  const std::string minimum = format_seconds(min) + " s";
  const std::string maximum = format_seconds(max) + " s";
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    // Whole seconds: compare without multiplying, which could overflow.
    if (*i < (min.count() + kNsPerSecond - 1) / kNsPerSecond) throw_below(key, value, minimum);
    if (*i > max.count() / kNsPerSecond) throw_above(key, value, maximum);
    return nanoseconds(*i * kNsPerSecond);
  }
  const auto* s = std::get_if<std::string>(&value);
  if (s == nullptr) {
    throw std::invalid_argument(describe(key, value) + " is a boolean, not a number of seconds");
  }
  if (s->empty()) {
    throw std::invalid_argument(describe(key, value) + " is empty: expected a number of seconds");
  }
  const auto text = scan_decimal(*s, true);
  if (!text) {
    throw std::invalid_argument(describe(key, value) +
                                " is not a number: expected decimal seconds such as 30, 0.5 or "
                                "1e-3 (no spaces, no hex, no inf/nan)");
  }
  double seconds = 0;
  const char* first = s->data() + (s->front() == '+' ? 1 : 0);
  const char* last = s->data() + s->size();
  const auto [end, ec] = std::from_chars(first, last, seconds);
  if (ec == std::errc::result_out_of_range) {
    // Beyond double: huge (1e400) or tiny (1e-400), the sign decides which end.
    if (text->negative || magnitude(*text) < 0) throw_below(key, value, minimum);
    throw_above(key, value, maximum);
  }
  if (ec != std::errc() || end != last || !std::isfinite(seconds)) {
    throw std::invalid_argument(describe(key, value) + " is not a number");
  }
  const double ns = seconds * static_cast<double>(kNsPerSecond);
  if (ns < static_cast<double>(min.count())) throw_below(key, value, minimum);
  if (ns > static_cast<double>(max.count())) throw_above(key, value, maximum);
  // Within [min, max] now; at the bounds return them exactly (max may be
  // close to 2^63 ns, where llround would overflow).
  if (ns >= static_cast<double>(max.count())) return max;
  if (ns <= static_cast<double>(min.count())) return min;
  return std::clamp(nanoseconds(std::llround(ns)), min, max);
}

Config::Config(const Config& other) {
  const detail::MutexLock lock(other.mutex_);
  values_ = other.values_;
}

Config& Config::operator=(const Config& other) {
  if (this == &other) return *this;
  auto copy = [&] {
    const detail::MutexLock lock(other.mutex_);
    return other.values_;
  }();
  const detail::MutexLock lock(mutex_);
  values_ = std::move(copy);
  version_.fetch_add(1, std::memory_order_release);
  return *this;
}

void Config::set_value(std::string key, ConfigValue value) {
  const detail::MutexLock lock(mutex_);
  values_.insert_or_assign(std::move(key), std::move(value));
  version_.fetch_add(1, std::memory_order_release);
}

ConfigValue Config::setdefault_value(std::string key, ConfigValue value) {
  const detail::MutexLock lock(mutex_);
  const auto [it, inserted] = values_.try_emplace(std::move(key), std::move(value));
  if (inserted) version_.fetch_add(1, std::memory_order_release);
  return it->second;
}

std::optional<ConfigValue> Config::get(std::string_view key) const {
  const detail::MutexLock lock(mutex_);
  const auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

bool Config::contains(std::string_view key) const {
  const detail::MutexLock lock(mutex_);
  return values_.find(key) != values_.end();
}

bool Config::erase(std::string_view key) {
  const detail::MutexLock lock(mutex_);
  const auto it = values_.find(key);
  if (it == values_.end()) return false;
  values_.erase(it);
  version_.fetch_add(1, std::memory_order_release);
  return true;
}

std::vector<std::string> Config::keys() const {
  const detail::MutexLock lock(mutex_);
  std::vector<std::string> out;
  out.reserve(values_.size());
  for (const auto& [key, value] : values_) out.push_back(key);
  return out;
}

std::optional<std::string> Config::get_string(std::string_view key) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return to_string(*value);
}

std::optional<bool> Config::get_bool(std::string_view key) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return parse_bool(key, *value);
}

std::optional<std::int64_t> Config::get_int(std::string_view key, std::int64_t min,
                                            std::int64_t max) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return parse_int(key, *value, min, max);
}

std::optional<std::chrono::nanoseconds> Config::get_duration(std::string_view key,
                                                             std::chrono::nanoseconds min,
                                                             std::chrono::nanoseconds max) const {
  auto value = get(key);
  if (!value) return std::nullopt;
  return parse_duration(key, *value, min, max);
}

}  // namespace webexec
