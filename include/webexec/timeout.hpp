/// `Timeout`: Python's `timeout=None | seconds`, as one C++ type.
///
/// Every blocking call in webexec (`result`, `exception`, `wait`,
/// `as_completed`, `map`) takes a `Timeout`. A default-constructed one waits
/// forever; any `std::chrono::duration` converts to one. The deadline is
/// fixed when the call starts, as in Python.
///
/// Example:
/// ```
/// using namespace std::chrono_literals;
/// future.result(250ms);            // TimeoutError after 250 ms
/// future.result();                 // waits as long as it takes
/// ```
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <ratio>
#include <type_traits>

namespace webexec {

namespace detail {

/// `std::chrono::duration_cast<To>(d)`, clamped to `To::min()..To::max()`
/// instead of overflowing (a NaN gives `To::max()`: no limit). The one
/// conversion webexec uses wherever a duration becomes a deadline.
template <typename To, typename Rep, typename Period>
constexpr To saturating_duration_cast(std::chrono::duration<Rep, Period> d) noexcept {
  using ToRep = typename To::rep;
  using R = std::ratio_divide<Period, typename To::period>;
  constexpr auto kMax = static_cast<long double>(std::numeric_limits<ToRep>::max());
  constexpr auto kMin = static_cast<long double>(std::numeric_limits<ToRep>::lowest());
  if constexpr (std::is_floating_point_v<Rep>) {
    if (d.count() != d.count()) return To::max();  // NaN
  } else if constexpr (std::is_integral_v<Rep> && std::is_integral_v<ToRep>) {
    // Exact when the intermediate count * num cannot overflow.
    constexpr std::intmax_t kSafe = std::numeric_limits<std::intmax_t>::max() / R::num;
    const auto c = d.count();
    const bool small = std::is_signed_v<Rep>
                           ? (c <= kSafe && c >= -kSafe)
                           : static_cast<std::uintmax_t>(c) <= static_cast<std::uintmax_t>(kSafe);
    if (small) {
      const std::intmax_t scaled = static_cast<std::intmax_t>(c) * R::num / R::den;
      if (static_cast<long double>(scaled) >= kMax) return To::max();
      if (static_cast<long double>(scaled) <= kMin) return To::min();
      return To(static_cast<ToRep>(scaled));
    }
  }
  const long double x = static_cast<long double>(d.count()) * R::num / R::den;
  if (x >= kMax) return To::max();
  if (x <= kMin) return To::min();
  return To(static_cast<ToRep>(x));
}

/// `now + limit`, or empty if that is past what the clock can represent
/// (any such deadline is "never"). A limit of zero or less gives `now`.
template <typename Clock>
constexpr std::optional<typename Clock::time_point> saturating_deadline(
    typename Clock::time_point now, typename Clock::duration limit) noexcept {
  if (limit <= Clock::duration::zero()) return now;
  if (limit >= Clock::time_point::max() - now) return std::nullopt;
  return now + limit;
}

}  // namespace detail

/// How long a blocking call may wait: forever (default), or a duration.
/// Negative durations mean "do not wait at all", like Python's `timeout=0`.
/// A duration too long for the clock (`nanoseconds::max()`, 400 years,
/// `duration<double>(1e30)`) saturates and waits forever.
class Timeout {
 public:
  using Clock = std::chrono::steady_clock;

  /// Waits forever (Python's `timeout=None`).
  constexpr Timeout() noexcept = default;

  /// Waits at most `d`.
  template <typename Rep, typename Period>
  constexpr Timeout(
      std::chrono::duration<Rep, Period> d) noexcept  // NOLINT(google-explicit-constructor)
      : limit_(detail::saturating_duration_cast<Clock::duration>(d)) {}

  /// True if this waits forever.
  [[nodiscard]] constexpr bool infinite() const noexcept { return !limit_.has_value(); }

  /// The limit, if any.
  [[nodiscard]] constexpr std::optional<Clock::duration> limit() const noexcept { return limit_; }

  /// The absolute deadline for a call starting now; empty when infinite or
  /// when the limit reaches past what the clock can represent.
  [[nodiscard]] std::optional<Clock::time_point> deadline() const noexcept {
    if (!limit_) return std::nullopt;
    return detail::saturating_deadline<Clock>(Clock::now(), *limit_);
  }

 private:
  std::optional<Clock::duration> limit_;
};

}  // namespace webexec
