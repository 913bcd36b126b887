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
#include <optional>

namespace webexec {

/// How long a blocking call may wait: forever (default), or a duration.
/// Negative durations mean "do not wait at all", like Python's `timeout=0`.
class Timeout {
 public:
  using Clock = std::chrono::steady_clock;

  /// Waits forever (Python's `timeout=None`).
  constexpr Timeout() noexcept = default;

  /// Waits at most `d`.
  template <typename Rep, typename Period>
  constexpr Timeout(
      std::chrono::duration<Rep, Period> d) noexcept  // NOLINT(google-explicit-constructor)
      : limit_(std::chrono::duration_cast<Clock::duration>(d)) {}

  /// True if this waits forever.
  [[nodiscard]] constexpr bool infinite() const noexcept { return !limit_.has_value(); }

  /// The limit, if any.
  [[nodiscard]] constexpr std::optional<Clock::duration> limit() const noexcept { return limit_; }

  /// The absolute deadline for a call starting now; empty when infinite.
  [[nodiscard]] std::optional<Clock::time_point> deadline() const noexcept {
    if (!limit_) return std::nullopt;
    return Clock::now() + (limit_->count() > 0 ? *limit_ : Clock::duration::zero());
  }

 private:
  std::optional<Clock::duration> limit_;
};

}  // namespace webexec
