/// `wait` and `as_completed`: Python's module functions for many futures.
///
/// Both accept any range of `Future<T>` or `AnyFuture` (convert first to mix
/// result types); duplicates count once. Unlike CPython (gh-87893), a future
/// cancelled by `shutdown(cancel_futures=true)` counts as done in both,
/// because webexec completes a cancelled future at once.
///
/// Example:
/// ```
/// std::vector<webexec::Future<int>> fs = ...;
/// auto [done, not_done] = webexec::wait(fs, std::chrono::seconds(1),
///                                       webexec::ReturnWhen::first_completed);
/// for (const auto& f : webexec::as_completed(fs)) use(f.result());
/// ```
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "webexec/detail/mutex.hpp"
#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/timeout.hpp"

namespace webexec {

/// When `wait` returns: Python's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED.
enum class ReturnWhen { first_completed, first_exception, all_completed };

/// `wait`'s result: the input futures split by whether they are done, each
/// part in input order, duplicates removed.
template <typename F>
struct DoneAndNotDone {
  std::vector<F> done;
  std::vector<F> not_done;
};

namespace detail {

/// Collects the indices of futures as they complete.
struct CompletionLog {
  Mutex mutex;
  std::condition_variable cv;
  std::deque<std::size_t> completed WEBEXEC_GUARDED_BY(mutex);
};

class CompletionNode final : public CallbackNode {
 public:
  CompletionNode(std::shared_ptr<CompletionLog> log, std::size_t index)
      : log_(std::move(log)), index_(index) {}
  void invoke(StateBase& /*state*/) noexcept override {
    {
      const MutexLock lock(log_->mutex);
      log_->completed.push_back(index_);
    }
    log_->cv.notify_all();
  }

 private:
  std::shared_ptr<CompletionLog> log_;
  std::size_t index_;
};

/// The unique futures of `fs`, in first-seen order.
template <typename Range>
auto unique_futures(const Range& fs) {
  using F = std::ranges::range_value_t<Range>;
  std::vector<F> out;
  std::unordered_set<const StateBase*> seen;
  for (const auto& f : fs) {
    if (!f.valid()) throw_no_state();
    if (seen.insert(state_of(f)).second) out.push_back(f);
  }
  return out;
}

/// Registers a CompletionNode on every not-yet-done future; removes the
/// ones still registered when destroyed.
template <typename F>
class CompletionWatch {
 public:
  explicit CompletionWatch(const std::vector<F>& fs)
      : fs_(fs), log_(std::make_shared<CompletionLog>()), nodes_(fs.size(), nullptr) {}
  CompletionWatch(const CompletionWatch&) = delete;
  CompletionWatch& operator=(const CompletionWatch&) = delete;
  ~CompletionWatch() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i] != nullptr && state_of(fs_[i])->remove_callback(nodes_[i])) delete nodes_[i];
    }
  }

  /// Watches future `i`; if it is already done its index is logged at once.
  void watch(std::size_t i) {
    auto* node = new CompletionNode(log_, i);
    nodes_[i] = node;
    state_of(fs_[i])->add_callback(node);
  }

  CompletionLog& log() { return *log_; }

 private:
  const std::vector<F>& fs_;
  std::shared_ptr<CompletionLog> log_;
  std::vector<CompletionNode*> nodes_;
};

template <typename F>
bool failed(const F& f) {
  return f.state() == FutureState::finished && state_of(f)->error() != nullptr;
}

}  // namespace detail

/// Waits for the futures in `fs` until `return_when` holds or `timeout`
/// passes, and returns them split into done and not done.
///
/// Thread safety: safe to call concurrently with anything on the futures.
/// Throws: `InvalidStateError` for an empty handle; nothing on timeout (the
/// partition tells what finished).
template <std::ranges::input_range Range>
auto wait(const Range& fs, Timeout timeout = {},
          ReturnWhen return_when = ReturnWhen::all_completed) {
  using F = std::ranges::range_value_t<Range>;
  const auto deadline = timeout.deadline();
  const std::vector<F> unique = detail::unique_futures(fs);

  auto satisfied = [&](std::size_t done_count, bool any_failed) {
    if (done_count == unique.size()) return true;
    if (return_when == ReturnWhen::first_completed) return done_count > 0;
    if (return_when == ReturnWhen::first_exception) return any_failed;
    return false;
  };

  std::size_t done_count = 0;
  bool any_failed = false;
  std::vector<std::size_t> pending;
  for (std::size_t i = 0; i < unique.size(); ++i) {
    if (unique[i].done()) {
      ++done_count;
      any_failed = any_failed || detail::failed(unique[i]);
    } else {
      pending.push_back(i);
    }
  }

  if (!satisfied(done_count, any_failed)) {
    detail::CompletionWatch<F> watch(unique);
    for (const std::size_t i : pending) watch.watch(i);
    auto& log = watch.log();
    detail::UniqueLock lock(log.mutex);
    for (;;) {
      while (!log.completed.empty()) {
        const std::size_t i = log.completed.front();
        log.completed.pop_front();
        ++done_count;
        any_failed = any_failed || detail::failed(unique[i]);
      }
      if (satisfied(done_count, any_failed)) break;
      if (!deadline) {
        log.cv.wait(lock.native());
      } else if (log.cv.wait_until(lock.native(), *deadline) == std::cv_status::timeout &&
                 log.completed.empty()) {
        break;
      }
    }
  }

  DoneAndNotDone<F> out;
  for (const auto& f : unique) (f.done() ? out.done : out.not_done).push_back(f);
  return out;
}

/// `wait({a, b, c}, ...)` for a braced list of one handle type.
template <typename F>
auto wait(std::initializer_list<F> fs, Timeout timeout = {},
          ReturnWhen return_when = ReturnWhen::all_completed) {
  return wait(std::vector<F>(fs), timeout, return_when);
}

/// The range `as_completed` returns; iterate it once.
template <typename F>
class AsCompleted {
  struct State;  // declared before iterator uses it (clang 14 needs it; g++ does not)

 public:
  /// Starts watching; the deadline runs from here.
  AsCompleted(std::vector<F> fs, Timeout timeout)
      : state_(std::make_unique<State>(std::move(fs), timeout)) {}

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = F;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    const F& operator*() const { return owner_->fs[owner_->current]; }
    const F* operator->() const { return &**this; }
    /// Blocks for the next completion. Throws: `TimeoutError("N (of M)
    /// futures unfinished")` once the deadline passes.
    iterator& operator++() {
      owner_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t /*end*/) {
      return it.at_end();
    }

   private:
    friend class AsCompleted;
    explicit iterator(typename AsCompleted::State* owner) : owner_(owner) {}
    [[nodiscard]] bool at_end() const { return owner_ == nullptr || owner_->finished(); }
    typename AsCompleted::State* owner_ = nullptr;
  };

  /// The first done future (blocking for it if none is done yet).
  iterator begin() {
    if (!state_->started) {
      state_->started = true;
      state_->advance();
    }
    return iterator(state_.get());
  }
  static std::default_sentinel_t end() noexcept { return {}; }

 private:
  struct State {
    State(std::vector<F> input, Timeout timeout)
        : fs(detail::unique_futures(input)), deadline(timeout.deadline()), watch(fs) {
      for (std::size_t i = 0; i < fs.size(); ++i) {
        if (fs[i].done()) {
          ready.push_back(i);
        } else {
          watch.watch(i);  // logs at once if it finished meanwhile
        }
      }
    }

    [[nodiscard]] bool finished() const { return yielded > fs.size() || fs.empty(); }

    void advance() {
      if (yielded == fs.size()) {
        ++yielded;  // past the end
        return;
      }
      if (ready.empty()) {
        auto& log = watch.log();
        detail::UniqueLock lock(log.mutex);
        // A loop, not wait(lock, predicate): the analysis checks this body,
        // where the lock is held, but not a predicate lambda's.
        while (log.completed.empty()) {
          if (!deadline) {
            log.cv.wait(lock.native());
          } else if (log.cv.wait_until(lock.native(), *deadline) == std::cv_status::timeout &&
                     log.completed.empty()) {
            throw TimeoutError(std::to_string(fs.size() - yielded) + " (of " +
                               std::to_string(fs.size()) + ") futures unfinished");
          }
        }
        ready.insert(ready.end(), log.completed.begin(), log.completed.end());
        log.completed.clear();
      }
      current = ready.front();
      ready.pop_front();
      ++yielded;
    }

    std::vector<F> fs;
    std::optional<Timeout::Clock::time_point> deadline;
    detail::CompletionWatch<F> watch;
    std::deque<std::size_t> ready;
    std::size_t current = 0;
    std::size_t yielded = 0;  // fs.size() + 1 once exhausted
    bool started = false;
  };

  std::unique_ptr<State> state_;
};

/// Yields each future of `fs` once as it completes: those already done
/// first (in input order), then in completion order.
///
/// Thread safety: the returned range is for one thread.
/// Throws (while iterating): `TimeoutError("N (of M) futures unfinished")`
/// when `timeout`, counted from this call, passes.
template <std::ranges::input_range Range>
auto as_completed(const Range& fs, Timeout timeout = {}) {
  using F = std::ranges::range_value_t<Range>;
  return AsCompleted<F>(std::vector<F>(std::ranges::begin(fs), std::ranges::end(fs)), timeout);
}

template <typename F>
auto as_completed(std::initializer_list<F> fs, Timeout timeout = {}) {
  return AsCompleted<F>(std::vector<F>(fs), timeout);
}

}  // namespace webexec
