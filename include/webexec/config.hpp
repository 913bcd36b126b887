/// `Config`: Flask's `app.config`, with strict typed reads.
///
/// Keys are strings; values are set as strings, integers or booleans.
/// `setdefault` stores a value only if the key is missing and returns the
/// stored one, as Python's `dict.setdefault` does. Typed reads are strict, and
/// one grammar serves every text value: no whitespace anywhere, no hex, no
/// `inf`/`nan`, at most one sign.
///
/// - a boolean accepts true/false/1/0/yes/no/on/off in any case;
/// - an integer is `[+-]digits`, within the caller's [min, max];
/// - a duration is decimal seconds, `[+-]digits[.digits][e[+-]digits]` (or an
///   integer value), within [min_duration, max_duration] = [1 ms, 365 days].
///
/// Every error names the key and the value, and says what is wrong (e.g.
/// `EXECUTOR_TASK_TIMEOUT='1e-12' is below the minimum of 0.001 s`).
///
/// Example:
/// ```
/// webexec::Config config;
/// config.set("EXECUTOR_MAX_WORKERS", 4);
/// config.set("EXECUTOR_PROPAGATE_EXCEPTIONS", "yes");
/// config.set("EXECUTOR_TASK_TIMEOUT", "2.5");
/// int workers = *config.get_int("EXECUTOR_MAX_WORKERS");        // 4
/// bool propagate = *config.get_bool("EXECUTOR_PROPAGATE_EXCEPTIONS");  // true
/// auto timeout = *config.get_duration("EXECUTOR_TASK_TIMEOUT");  // 2500 ms
/// ```
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "webexec/detail/export.hpp"
#include "webexec/detail/mutex.hpp"

namespace webexec {

/// One configuration value: a string, an integer or a boolean.
using ConfigValue = std::variant<std::string, std::int64_t, bool>;

/// The value as text, e.g. for error messages: "abc", "42", "true".
WEBEXEC_API std::string to_string(const ConfigValue& value);

/// The longest part of a value that error messages echo: 64 bytes.
inline constexpr std::size_t max_echoed_bytes = 64;

/// `text` made safe to put in one line of an error or log message: valid
/// UTF-8 is kept, except that `\`, `'` and control characters are escaped
/// (`\n`, `\t`, `\r`, `\'`, `\\`, other C0 bytes and DEL as `\xNN`, C1
/// controls and the bidi/line-separator code points as `\uNNNN`); a byte that
/// is not part of valid UTF-8 becomes `\xNN`. At most `max_bytes` bytes of
/// `text` are shown, cut at a character boundary; a longer text gets
/// `... (N bytes)` appended.
/// Thread safety: a pure function. Throws: `std::bad_alloc` only.
WEBEXEC_API std::string escape_text(std::string_view text,
                                    std::size_t max_bytes = max_echoed_bytes);

/// escape_text() in single quotes, the form errors use: `'a\nb'`, or
/// `'aaaa'... (100000 bytes)` when truncated.
WEBEXEC_API std::string quote_value(std::string_view text,
                                    std::size_t max_bytes = max_echoed_bytes);

/// Parses `value` as a boolean: true/false/1/0/yes/no/on/off, any case.
/// Throws: `std::invalid_argument` naming `key` and the value otherwise.
WEBEXEC_API bool parse_bool(std::string_view key, const ConfigValue& value);

/// Parses `value` as an integer in [min, max]: an integer value, or text
/// `[+-]digits` (no whitespace, no hex, no fraction).
/// Throws: `std::invalid_argument` naming `key` and the value for anything
/// else (a boolean included), or `std::out_of_range` naming them and the bound
/// for a value outside the range (beyond int64 too).
WEBEXEC_API std::int64_t parse_int(std::string_view key, const ConfigValue& value,
                                   std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX);

/// The shortest duration parse_duration() accepts by default: 1 ms. Shorter
/// time limits are below what the engines can honour (and `1e-12` used to
/// become 0 s, which killed every job).
inline constexpr std::chrono::nanoseconds min_duration = std::chrono::milliseconds(1);
/// The longest duration parse_duration() accepts by default: 365 days
/// (31536000 s). Longer means "no limit": leave the key unset.
inline constexpr std::chrono::nanoseconds max_duration = std::chrono::hours(24 * 365);

/// Parses `value` as a duration in decimal seconds within [min, max] (both
/// > 0): an integer value, or text `[+-]digits[.digits][(e|E)[+-]digits]`, or
/// `.5`/`5.` forms. No whitespace, no hex floats (`0x1p-3`), no `inf`/`nan`,
/// one sign at most. The result is rounded to the nearest nanosecond.
/// Throws: `std::invalid_argument` naming `key` and the value for text that is
/// not such a number (or a boolean), `std::out_of_range` naming them and the
/// bound for a number below `min` (zero and negatives included) or above `max`.
WEBEXEC_API std::chrono::nanoseconds parse_duration(std::string_view key, const ConfigValue& value,
                                                    std::chrono::nanoseconds min = min_duration,
                                                    std::chrono::nanoseconds max = max_duration);

/// The largest `EXECUTOR_MAX_WORKERS` for `EXECUTOR_TYPE=process`: 256. Each
/// worker is a process with its own descriptors and memory; beyond this a
/// typo (65536) would exhaust the host's process and descriptor limits.
inline constexpr int max_worker_processes = 256;
/// The largest `EXECUTOR_MAX_WORKERS` for `EXECUTOR_TYPE=thread`: 65536.
inline constexpr int max_worker_threads = 1 << 16;

/// Turns a bool, any integer, or anything string-like into a ConfigValue.
template <typename V>
ConfigValue make_config_value(V&& value) {
  using D = std::remove_cvref_t<V>;
  if constexpr (std::is_same_v<D, ConfigValue>) {
    return std::forward<V>(value);
  } else if constexpr (std::is_same_v<D, bool>) {
    return ConfigValue(std::in_place_type<bool>, value);
  } else if constexpr (std::is_integral_v<D>) {
    return ConfigValue(std::in_place_type<std::int64_t>, static_cast<std::int64_t>(value));
  } else {
    static_assert(std::is_constructible_v<std::string, V>,
                  "a config value is a string, an integer or a boolean");
    return ConfigValue(std::in_place_type<std::string>, std::string(std::forward<V>(value)));
  }
}

namespace detail {

/// Optimal-string-alignment edit distance, ASCII case-insensitive
/// (insert, delete, substitute, swap two neighbours: 1 each).
WEBEXEC_API std::size_t edit_distance(std::string_view a, std::string_view b);

/// A key that looks like one of an executor's keys but is none of them.
struct MisspeltKey {
  std::string key;      ///< as found (raw; escape before printing)
  std::string nearest;  ///< the known key with the smallest edit distance
  bool from_environment = false;
};

/// The misspelt keys of the executor whose keys start with `prefix` (""
/// or "NAME_"), given its `known` keys without the prefix. A key counts when
/// it starts with `prefix + "EXECUTOR"` (any case), is not a known key, and is
/// not another executor's known key (`OTHER_` + prefix + known). App config
/// keys always count; environment variables (read when `environment`) count
/// for a named executor, and for the unnamed one only within edit distance 2
/// of a known key, so that unrelated variables (Jenkins' EXECUTOR_NUMBER) stay
/// quiet. Thread safety: reads the environment (not thread-safe with setenv).
WEBEXEC_API std::vector<MisspeltKey> misspelt_keys(const std::vector<std::string>& config_keys,
                                                   std::string_view prefix,
                                                   const std::vector<std::string>& known,
                                                   bool environment);

}  // namespace detail

/// A thread-safe string-keyed configuration map.
class WEBEXEC_API Config {
 public:
  Config() = default;
  Config(const Config& other);
  Config& operator=(const Config& other);

  /// Stores `value` (string, integer or boolean) under `key`, replacing any
  /// previous value.
  template <typename V>
  void set(std::string key, V&& value) {
    set_value(std::move(key), make_config_value(std::forward<V>(value)));
  }

  /// Stores `value` only if `key` is missing; returns the stored value.
  template <typename V>
  ConfigValue setdefault(std::string key, V&& value) {
    return setdefault_value(std::move(key), make_config_value(std::forward<V>(value)));
  }

  /// The raw value, if set.
  [[nodiscard]] std::optional<ConfigValue> get(std::string_view key) const;
  [[nodiscard]] bool contains(std::string_view key) const;
  bool erase(std::string_view key);
  [[nodiscard]] std::vector<std::string> keys() const;

  /// Counts changes: any set, setdefault that stores, erase or assignment
  /// makes it grow. Lets caches notice a changed config cheaply.
  [[nodiscard]] std::uint64_t version() const noexcept {
    return version_.load(std::memory_order_acquire);
  }

  /// The value as text, if set.
  [[nodiscard]] std::optional<std::string> get_string(std::string_view key) const;
  /// The value as a strict boolean, if set. Throws as parse_bool().
  [[nodiscard]] std::optional<bool> get_bool(std::string_view key) const;
  /// The value as a strict integer in [min, max], if set. Throws as parse_int().
  [[nodiscard]] std::optional<std::int64_t> get_int(std::string_view key,
                                                    std::int64_t min = INT64_MIN,
                                                    std::int64_t max = INT64_MAX) const;
  /// The value as a strict duration in [min, max], if set. Throws as
  /// parse_duration().
  [[nodiscard]] std::optional<std::chrono::nanoseconds> get_duration(
      std::string_view key, std::chrono::nanoseconds min = min_duration,
      std::chrono::nanoseconds max = max_duration) const;

 private:
  void set_value(std::string key, ConfigValue value);
  ConfigValue setdefault_value(std::string key, ConfigValue value);

  mutable detail::Mutex mutex_;
  std::map<std::string, ConfigValue, std::less<>> values_ WEBEXEC_GUARDED_BY(mutex_);
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace webexec
