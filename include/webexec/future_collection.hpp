/// `FutureCollection`: futures stored by key, `executor.futures` in
/// Flask-Executor, so that a later request can poll a job.
///
/// Differences from upstream, each a fix:
/// - `contains(key)` checks keys (upstream checks values, #35);
/// - a missing key gives an empty optional, never a guessed value;
/// - eviction never loses running work: when full, the oldest *finished*
///   entry goes; if none has finished, `add` throws `CapacityError`;
/// - finished entries can expire after a TTL (`EXECUTOR_FUTURES_TTL`);
/// - it is thread-safe, and lists its keys (#28);
/// - tasks can report progress, read here by key.
///
/// Example:
/// ```
/// executor.submit_stored("calc_power", big_pow, 323, 1235);
/// ...
/// auto polled = executor.futures().pop_if_done("calc_power");  // one atomic step
/// if (!polled) {
///   reply(404, {{"status", nullptr}});
/// } else if (!polled->future) {
///   reply(200, {{"status", to_string(polled->state)}});
/// } else {
///   reply(200, {{"status", "done"}, {"result", polled->future->result<std::string>()}});
/// }
/// ```
/// Never write `done(key)` then `pop(key)`: another thread can pop between
/// the two calls, and the second poller's `pop` is then empty.
/// ```
/// ```
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/mutex.hpp"
#include "webexec/future.hpp"
#include "webexec/timeout.hpp"

namespace webexec {

template <typename Fn>
class Job;

/// Turns a finished future's result into JSON for status routes; null when
/// the result type has no JSON form.
using ResultRenderer = nlohmann::json (*)(const AnyFuture& future);

/// The renderer for `Future<T>`: `nlohmann::json(result)` when `T` converts
/// to JSON (the usual `to_json` convention), else none.
template <typename T>
constexpr ResultRenderer renderer_for() {
  if constexpr (std::is_void_v<T>) {
    return [](const AnyFuture&) { return nlohmann::json(); };
  } else if constexpr (std::is_constructible_v<nlohmann::json, const T&>) {
    return [](const AnyFuture& f) { return nlohmann::json(f.as<T>().result()); };
  } else {
    return nullptr;
  }
}

/// A bounded, thread-safe map from key to future. See the file comment.
class WEBEXEC_API FutureCollection {
 public:
  using Clock = std::chrono::steady_clock;

  /// Throws: `std::invalid_argument` if `max_length` is 0.
  explicit FutureCollection(std::size_t max_length = 50);
  FutureCollection(const FutureCollection&) = delete;
  FutureCollection& operator=(const FutureCollection&) = delete;
  ~FutureCollection();

  [[nodiscard]] std::size_t max_length() const;
  /// Throws: `std::invalid_argument` if 0. A smaller bound applies from
  /// the next add.
  void set_max_length(std::size_t max_length);

  /// Finished entries older than `ttl` (counted from completion) are
  /// dropped; none (the default) keeps them until popped or evicted.
  void set_ttl(std::optional<Clock::duration> ttl);
  [[nodiscard]] std::optional<Clock::duration> ttl() const;

  /// Stores `future` under `key`; see also the typed overload, which also
  /// lets status routes render the result as JSON.
  /// Throws: `std::invalid_argument` if `key` exists; `CapacityError` if the
  /// collection is full and no entry has finished.
  void add(std::string key, AnyFuture future, ResultRenderer render = nullptr,
           std::shared_ptr<detail::ProgressSlot> progress = nullptr);
  template <typename T>
  void add(std::string key, const Future<T>& future) {
    add(std::move(key), AnyFuture(future), renderer_for<T>());
  }

  /// Removes and returns the future under `key`; empty if missing.
  std::optional<AnyFuture> pop(std::string_view key);

  /// What `pop_if_done` found under a key.
  struct Polled {
    /// The state the future had when it was looked up.
    FutureState state = FutureState::pending;
    /// The future, now removed from the collection, if it was done
    /// (finished or cancelled); empty while it is pending or running.
    std::optional<AnyFuture> future;
  };

  /// One atomic poll of `key`: if its future is done, removes it and
  /// returns it with its state; otherwise returns its state and keeps it.
  /// Empty if `key` is missing (or expired). Of several threads polling
  /// the same done future, exactly one receives it; the others then see
  /// the key missing. This is the safe form of `done(key)`, then `pop(key)`,
  /// which races (issue 9 item 10). Thread-safe; never blocks on the task.
  std::optional<Polled> pop_if_done(std::string_view key);
  /// The future under `key` without removing it; empty if missing.
  [[nodiscard]] std::optional<AnyFuture> get(std::string_view key) const;

  /// True if a future is stored under `key` (keys, not values: upstream #35).
  [[nodiscard]] bool contains(std::string_view key) const;
  /// Keys in insertion order.
  [[nodiscard]] std::vector<std::string> keys() const;
  [[nodiscard]] std::size_t size() const;

  // Per-key queries: an empty optional means "no such key".
  [[nodiscard]] std::optional<bool> done(std::string_view key) const;
  [[nodiscard]] std::optional<bool> running(std::string_view key) const;
  [[nodiscard]] std::optional<bool> cancelled(std::string_view key) const;
  [[nodiscard]] std::optional<FutureState> state(std::string_view key) const;
  /// Cancels the future under `key`: its cancel() result, or empty if missing.
  std::optional<bool> cancel(std::string_view key);

  /// The result under `key`, waiting up to `timeout` (rethrows the task's
  /// exception; `CancelledError`, `TimeoutError` as `Future::result`).
  template <typename T>
  std::optional<T> result(std::string_view key, Timeout timeout = {}) const {
    auto f = get(key);
    if (!f) return std::nullopt;
    return f->result<T>(timeout);
  }

  /// The exception under `key` (null if it succeeded), waiting up to `timeout`.
  [[nodiscard]] std::optional<std::exception_ptr> exception(std::string_view key,
                                                            Timeout timeout = {}) const;

  /// The last progress the task under `key` reported; empty if missing or
  /// it never reported any.
  [[nodiscard]] std::optional<Progress> progress(std::string_view key) const;

  /// A JSON status document for `key`, or empty if missing:
  /// `{"key", "state", "progress", "result" | "error"}`. Never blocks.
  [[nodiscard]] std::optional<nlohmann::json> status(std::string_view key) const;

 public:
  struct Entry;  // internal

 private:
  friend class Executor;
  template <typename Fn>
  friend class Job;

  struct Stored {
    AnyFuture future;
    ResultRenderer render = nullptr;
    std::shared_ptr<detail::ProgressSlot> progress;
  };

  /// Checks `key` and reserves room under the lock, then calls `make()`
  /// (which submits the task) without it, so a refused key never runs its
  /// task and no callback runs under the lock; then stores the future.
  /// Storing cannot fail once `make()` returned.
  void add_checked(std::string key, const std::function<Stored()>& make);

  using List = std::list<std::shared_ptr<Entry>>;

  void purge_expired_locked(Clock::time_point now) WEBEXEC_REQUIRES(mutex_);
  [[nodiscard]] std::shared_ptr<Entry> find(std::string_view key) const;

  mutable detail::Mutex mutex_;
  std::size_t max_length_ WEBEXEC_GUARDED_BY(mutex_);
  std::optional<Clock::duration> ttl_ WEBEXEC_GUARDED_BY(mutex_);
  List order_ WEBEXEC_GUARDED_BY(mutex_);
  std::unordered_map<std::string, List::iterator> index_ WEBEXEC_GUARDED_BY(mutex_);
  std::unordered_set<std::string> reserved_ WEBEXEC_GUARDED_BY(mutex_);  // keys being submitted
};

}  // namespace webexec
