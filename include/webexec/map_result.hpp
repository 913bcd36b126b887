/// `MapResult<T>`: what `map` returns, Python's `Executor.map` generator.
///
/// All tasks are submitted when `map` is called; the results are read lazily,
/// in input order, as you iterate. Iteration rethrows a task's exception at
/// its item, and throws `TimeoutError` once the deadline fixed at the `map`
/// call passes. After either, and when a started iteration is abandoned, the
/// remaining futures are cancelled (as CPython's generator does on close).
/// A `MapResult` that is never iterated cancels nothing: its tasks all run.
///
/// Example:
/// ```
/// for (int square : pool.map([](int x) { return x * x; }, std::vector{1, 2, 3})) {
///   std::printf("%d\n", square);
/// }
/// ```
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "webexec/future.hpp"
#include "webexec/timeout.hpp"

namespace webexec {

/// An input range over the results of `map`; iterate it once, on one thread.
template <typename T>
class [[nodiscard]] MapResult {
 public:
  /// What iteration yields: `T`, or `std::monostate` for `void` tasks.
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  MapResult(std::vector<Future<T>> futures, std::optional<Timeout::Clock::time_point> deadline)
      : futures_(std::move(futures)), deadline_(deadline) {}
  MapResult(MapResult&&) noexcept = default;
  /// Takes `other`'s futures; this range's own remaining futures are
  /// cancelled first if its iteration had started (as its destructor does).
  MapResult& operator=(MapResult&& other) noexcept {
    if (this != &other) {
      if (started_) cancel_from(next_);
      futures_ = std::move(other.futures_);
      deadline_ = other.deadline_;
      current_ = std::move(other.current_);
      failed_ = std::move(other.failed_);
      next_ = std::exchange(other.next_, 0);
      started_ = std::exchange(other.started_, false);
      other.futures_.clear();
      other.current_.reset();
    }
    return *this;
  }
  MapResult(const MapResult&) = delete;
  MapResult& operator=(const MapResult&) = delete;
  ~MapResult() {
    if (started_) cancel_from(next_);
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = MapResult::value_type;

    iterator() = default;
    value_type& operator*() const { return *owner_->current_; }
    value_type* operator->() const { return &*owner_->current_; }
    /// Waits for the next result. Throws the task's exception or TimeoutError.
    iterator& operator++() {
      owner_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t /*end*/) {
      return it.at_end();
    }

   private:
    friend class MapResult;
    explicit iterator(MapResult* owner) : owner_(owner) {}
    [[nodiscard]] bool at_end() const { return owner_ == nullptr || !owner_->current_.has_value(); }
    MapResult* owner_ = nullptr;
  };

  /// Starts iteration: waits for the first result.
  iterator begin() {
    if (!started_) {
      started_ = true;
      advance();
    }
    return iterator(this);
  }
  static std::default_sentinel_t end() noexcept { return {}; }

  /// The number of items submitted.
  [[nodiscard]] std::size_t size() const noexcept { return futures_.size(); }

 private:
  void advance() {
    current_.reset();
    if (next_ == futures_.size()) return;
    // Take the future out, so the range keeps no reference to yielded results.
    Future<T> f = std::move(futures_[next_++]);
    try {
      if constexpr (std::is_void_v<T>) {
        f.result(remaining());
        current_.emplace();
      } else {
        current_.emplace(f.result(remaining()));
      }
    } catch (...) {
      f.cancel();  // a no-op unless it timed out while still pending
      cancel_from(next_);
      next_ = futures_.size();
      // Keep the failed future (and so its exception) until this range dies:
      // the caller's catch block may still be reading the exception.
      failed_ = std::move(f);
      throw;
    }
  }

  [[nodiscard]] Timeout remaining() const {
    if (!deadline_) return {};
    return *deadline_ - Timeout::Clock::now();
  }

  /// Cancels items first.. last to first, as CPython does: cancelling in
  /// order would let a worker skip a just-cancelled item and start the next
  /// one before it is cancelled too.
  void cancel_from(std::size_t first) noexcept {
    for (std::size_t i = futures_.size(); i > first; --i) {
      if (futures_[i - 1].valid()) futures_[i - 1].cancel();
    }
  }

  std::vector<Future<T>> futures_;
  std::optional<Timeout::Clock::time_point> deadline_;
  std::optional<value_type> current_;
  Future<T> failed_;
  std::size_t next_ = 0;
  bool started_ = false;
};

namespace detail {

template <typename T>
struct IsTimeoutArg
    : std::bool_constant<std::is_same_v<T, Timeout> || std::is_convertible_v<T, Timeout>> {};

/// Calls `submit(items...)` for each item of the zipped ranges (the shortest
/// ends it) and gathers the futures into a MapResult.
template <typename Submit, typename... Ranges>
auto map_ranges(Submit& submit, Timeout timeout, Ranges&... ranges) {
  using F = decltype(submit(*std::ranges::begin(ranges)...));
  const auto deadline = timeout.deadline();
  std::vector<F> futures;
  if constexpr ((std::ranges::sized_range<Ranges> && ...)) {
    futures.reserve(std::min({static_cast<std::size_t>(std::ranges::size(ranges))...}));
  }
  auto its = std::make_tuple(std::ranges::begin(ranges)...);
  auto ends = std::make_tuple(std::ranges::end(ranges)...);
  constexpr auto idx = std::index_sequence_for<Ranges...>{};
  auto any_at_end = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return ((std::get<I>(its) == std::get<I>(ends)) || ...);
  };
  auto submit_and_advance = [&]<std::size_t... I>(std::index_sequence<I...>) {
    futures.push_back(submit(*std::get<I>(its)...));
    (++std::get<I>(its), ...);
  };
  while (!any_at_end(idx)) submit_and_advance(idx);
  return MapResult<typename F::value_type>(std::move(futures), deadline);
}

/// Splits `(ranges..., [timeout])` and calls map_ranges.
template <typename Submit, typename... RangesAndTimeout>
auto map_args(Submit& submit, RangesAndTimeout&&... args) {
  static_assert(sizeof...(RangesAndTimeout) > 0, "map needs at least one range");
  auto all = std::forward_as_tuple(std::forward<RangesAndTimeout>(args)...);
  constexpr std::size_t n = sizeof...(RangesAndTimeout);
  using Last = std::remove_cvref_t<std::tuple_element_t<n - 1, decltype(all)>>;
  if constexpr (IsTimeoutArg<Last>::value) {
    static_assert(n > 1, "map needs at least one range before the timeout");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return map_ranges(submit, Timeout(std::get<n - 1>(all)), std::get<I>(all)...);
    }
    (std::make_index_sequence<n - 1>{});
  } else {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return map_ranges(submit, Timeout{}, std::get<I>(all)...);
    }
    (std::make_index_sequence<n>{});
  }
}

}  // namespace detail
}  // namespace webexec
