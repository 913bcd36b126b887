/// The shared state behind `Future`, `AnyFuture` and `Promise` (not API).
///
/// One heap block holds everything a future needs: an intrusive reference
/// count, one atomic state word, the stored exception, the done-callback list
/// and (in a derived class) the result and the task itself. The state word
/// packs the `FutureState` with two flags:
///
/// - `kWaiters`: a thread sleeps in `futex_wait` on the word. Completion issues
///   a `futex_wake` only when this bit is set, so a result nobody waits for
///   costs no system call (unlike `std::promise::set_value` on this toolchain).
/// - `kHasCallbacks`: the callback list is non-empty; completion takes the
///   callback lock only when it is set.
///
/// Transitions: pending -> running -> completing -> finished, pending ->
/// completing -> finished (a promise set without running), pending ->
/// cancelled. `completing` is internal: it reads as running, and it gives one
/// producer the exclusive right to write the result.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <typeinfo>
#include <utility>

#include "webexec/detail/export.hpp"
#include "webexec/detail/spin.hpp"

namespace webexec {

/// The four states of Python's `concurrent.futures.Future`.
enum class FutureState : std::uint8_t { pending, running, cancelled, finished };

/// Python's name for a state: "PENDING", "RUNNING", "CANCELLED", "FINISHED".
WEBEXEC_API const char* to_string(FutureState state) noexcept;

}  // namespace webexec

namespace webexec::detail {

using Clock = std::chrono::steady_clock;

/// Intrusive link used by the executor's task queue.
struct QueueNode {
  std::atomic<QueueNode*> queue_next{nullptr};
};

class StateBase;
class TaskContext;

/// One entry of a future's done-callback list; owned by the list.
class CallbackNode {
 public:
  CallbackNode() = default;
  CallbackNode(const CallbackNode&) = delete;
  CallbackNode& operator=(const CallbackNode&) = delete;
  virtual ~CallbackNode() = default;

  /// Runs the callback. Must not throw: user callbacks catch and report.
  virtual void invoke(StateBase& state) noexcept = 0;

 private:
  friend class StateBase;
  CallbackNode* next_ = nullptr;
};

/// Hands an exception that no caller can receive (thrown by a done callback,
/// an initializer, ...) to the installed error handler. `where` says what
/// threw, e.g. "done callback".
WEBEXEC_API void report_error(const char* where, std::exception_ptr error) noexcept;

/// Counts of the tasks a pool worker ran inline, in wait_until(), because
/// it waited on a pending task of its own pool. Written only by that worker
/// (relaxed load and store), read by the pool's stats() from any thread.
struct InlineRunCounters {
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
};

/// What the current thread is doing, for deadlock detection.
struct ThreadRole {
  const void* executor = nullptr;            // the pool this thread works for
  const StateBase* task = nullptr;           // the task it is running
  InlineRunCounters* inline_runs = nullptr;  // the pool worker's own, or null
};
WEBEXEC_API ThreadRole& thread_role() noexcept;

/// Wraps `node` so it runs inside the context current on this thread (or,
/// outside any, the task's own). Defined with the context machinery.
WEBEXEC_API CallbackNode* wrap_in_context(StateBase& state, CallbackNode* node);

/// Reference-counted state shared by every handle of one future.
class WEBEXEC_API StateBase : public QueueNode {
 public:
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kCancelled = 2;
  static constexpr std::uint32_t kFinished = 3;
  static constexpr std::uint32_t kCompleting = 4;
  static constexpr std::uint32_t kStateMask = 7;
  static constexpr std::uint32_t kWaiters = 8;
  static constexpr std::uint32_t kHasCallbacks = 16;

  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  /// Sets the count of a state nobody else can see yet (saves an atomic
  /// increment per submit).
  void preset_refs(std::uint32_t n) noexcept { refs_.store(n, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  [[nodiscard]] static constexpr bool is_done(std::uint32_t word) noexcept {
    const std::uint32_t s = word & kStateMask;
    return s == kCancelled || s == kFinished;
  }

  [[nodiscard]] FutureState state() const noexcept {
    switch (word_.load(std::memory_order_acquire) & kStateMask) {
      case kPending:
        return FutureState::pending;
      case kCancelled:
        return FutureState::cancelled;
      case kFinished:
        return FutureState::finished;
      default:
        return FutureState::running;
    }
  }
  [[nodiscard]] bool done() const noexcept {
    return is_done(word_.load(std::memory_order_acquire));
  }

  /// Python's `cancel()`: pending -> cancelled, true also if already cancelled.
  /// Virtual so that a state whose task sits in another process can refuse
  /// once that process has started it.
  virtual bool cancel() noexcept;

  /// Python's `set_running_or_notify_cancel()`. Throws InvalidStateError
  /// unless pending or cancelled.
  bool set_running_or_notify_cancel();

  /// Claims the right to set the result: pending/running -> completing.
  /// False if the future is already done or being completed.
  bool try_claim() noexcept;

  /// Completes a claimed (or running) future with an exception.
  void finish_with_error(std::exception_ptr error) noexcept {
    error_ = std::move(error);
    complete(kFinished);
  }

  /// Blocks until done or until `deadline` (none: forever). Returns done().
  /// Called from a worker of the pool that owns this still-pending task, it
  /// runs the task inline instead of waiting for a worker that may never come.
  /// Throws InvalidStateError when a task waits for its own future.
  bool wait_until(const std::optional<Clock::time_point>& deadline);

  /// Appends `node` (taking ownership), or runs and deletes it at once if done.
  void add_callback(CallbackNode* node) noexcept;

  /// Unlinks `node` if completion has not taken it yet. On true the caller
  /// owns `node` again; on false completion owns and deletes it.
  bool remove_callback(CallbackNode* node) noexcept;

  /// The stored exception; meaningful once finished.
  [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }

  /// `typeid` of the result type.
  [[nodiscard]] virtual const std::type_info& result_type() const noexcept = 0;

  /// Asks a running task that takes a `std::stop_token` to stop. False if
  /// the task takes no token (or there is no task).
  virtual bool request_stop() noexcept { return false; }
  [[nodiscard]] virtual bool stop_requested() const noexcept { return false; }

  /// Runs a pending task's callable on this thread, storing its value or
  /// exception without publishing it yet. Returns false (doing nothing) if
  /// the task was cancelled or has already run, or there is no task.
  bool run_task() noexcept;

  /// Publishes the result stored by run_task(): running -> finished.
  void publish() noexcept { complete(kFinished); }

  /// True if done callbacks are registered (a hint: one may be added at
  /// any moment until the future is done).
  [[nodiscard]] bool has_callbacks() const noexcept {
    return (word_.load(std::memory_order_relaxed) & kHasCallbacks) != 0;
  }

  /// publish(), but only if no done callback is registered; false (doing
  /// nothing) otherwise. Lets a worker know that nothing of the task runs
  /// after the result becomes visible.
  bool try_publish_without_callbacks() noexcept;

  /// run_task() then publish(): what a thread that runs a task inline does.
  void execute() noexcept {
    if (run_task()) publish();
  }

  /// Completes a pending task with `error` without running it. False if it
  /// was no longer pending.
  bool fail_pending(std::exception_ptr error) noexcept;

  /// The executor that queued this task, or null for a promise.
  [[nodiscard]] const void* owner() const noexcept { return owner_; }

  /// The app/request context the task runs in, for tasks of an `Executor`;
  /// null otherwise. Done callbacks of such futures run in a context too.
  virtual TaskContext* task_context() noexcept { return nullptr; }

 protected:
  StateBase() noexcept = default;
  explicit StateBase(const void* owner) noexcept : owner_(owner) {}
  virtual ~StateBase();

  /// pending -> running. False if cancelled, or if it already ran.
  bool begin_run() noexcept {
    std::uint32_t w = word_.load(std::memory_order_relaxed);
    while ((w & kStateMask) == kPending) {
      if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kRunning, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  /// Publishes the final state, wakes sleepers and runs the callbacks.
  void complete(std::uint32_t final_state) noexcept;

  enum class CancelStep { transitioned, already, refused };
  /// The state-word half of cancel(): pending -> cancelled.
  CancelStep cancel_state() noexcept;
  /// The rest of cancel() after a transition: drop the task, complete.
  void finish_cancel() noexcept {
    drop_task();
    complete(kCancelled);
  }

  /// Calls the task's callable and stores the outcome (not published);
  /// overridden by task states. Called at most once, in the running state.
  virtual void run() noexcept {}

  /// Destroys the task's callable once it can no longer run (after cancel).
  virtual void drop_task() noexcept {}

  std::exception_ptr error_;

 private:
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> word_{kPending};
  CallbackNode* head_ WEBEXEC_GUARDED_BY(callbacks_lock_) = nullptr;
  CallbackNode* tail_ WEBEXEC_GUARDED_BY(callbacks_lock_) = nullptr;
  const void* owner_ = nullptr;
  // Last, so a derived task's small members fill the tail padding: a task
  // with an empty callable is 64 bytes, one cache line.
  SpinLock callbacks_lock_;
};

/// Shared state with a result of type `T`.
template <typename T>
class ResultState : public StateBase {
 public:
  [[nodiscard]] const std::type_info& result_type() const noexcept override { return typeid(T); }

  /// Stores the value and completes. Caller must own the state (claimed or
  /// running). A throwing constructor stores its exception instead.
  template <typename... A>
  void finish_with_value(A&&... args) noexcept {
    try {
      value_.emplace(std::forward<A>(args)...);
    } catch (...) {
      error_ = std::current_exception();
    }
    complete(kFinished);
  }

  /// The value; precondition: finished without exception.
  [[nodiscard]] const T& value() const noexcept { return *value_; }

 protected:
  using StateBase::StateBase;
  std::optional<T> value_;
};

template <>
class ResultState<void> : public StateBase {
 public:
  [[nodiscard]] const std::type_info& result_type() const noexcept override { return typeid(void); }
  void finish_with_value() noexcept { complete(kFinished); }
  void value() const noexcept {}

 protected:
  using StateBase::StateBase;
};

/// A state with nothing but a result slot: what a `Promise` creates.
template <typename T>
class PromiseState final : public ResultState<T> {};

}  // namespace webexec::detail
