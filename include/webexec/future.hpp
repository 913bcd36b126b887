/// `Future<T>`, `AnyFuture` and `Promise<T>`: Python's
/// `concurrent.futures.Future`, typed.
///
/// A future is a shared handle: copies refer to the same result, like Python
/// references to one `Future` object. Its state is one of `FutureState`'s
/// pending, running, cancelled or finished. `result()` blocks until the task
/// is done, then returns its value, rethrows its exception, or throws
/// `CancelledError`; it can be called any number of times.
///
/// Example:
/// ```
/// webexec::ThreadPoolExecutor pool;
/// webexec::Future<int> f = pool.submit([](int x) { return x * 2; }, 21);
/// f.add_done_callback([](const webexec::Future<int>& done) {
///   std::printf("%d\n", done.result());
/// });
/// int answer = f.result();   // 42
/// ```
///
/// Differences from Python, on purpose:
/// - `request_stop()` asks a *running* task that takes a `std::stop_token`
///   to stop; Python has no way to stop a running task.
/// - `result()` called from inside the task that computes it throws
///   `InvalidStateError` instead of hanging; called from a worker of the same
///   pool on a still-pending task, it runs that task inline.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "webexec/detail/export.hpp"
#include "webexec/detail/future_state.hpp"
#include "webexec/errors.hpp"
#include "webexec/timeout.hpp"

namespace webexec {

template <typename T>
class Future;
class AnyFuture;
template <typename T>
class Promise;

/// Receives every exception that has no caller to go to: one thrown by a
/// done callback (`where` = "done callback") or by a pool's initializer
/// ("ThreadPoolExecutor initializer"). The default handler prints
/// `webexec: exception in <where>: <what>` to stderr.
using ErrorHandler = std::function<void(const char* where, std::exception_ptr error)>;

/// Installs `handler` (an empty function restores the default) and returns
/// the previous one.
///
/// Thread safety: safe to call at any time; an error reported concurrently
/// goes to either the old or the new handler.
/// Throws: nothing. An exception escaping the handler itself is dropped.
WEBEXEC_API ErrorHandler set_error_handler(ErrorHandler handler);

namespace detail {

/// Lets webexec's own layers make handles from a state (adopting one reference).
struct FutureAccess {
  template <typename Handle>
  static Handle adopt(StateBase* state) noexcept {
    return Handle::adopt(state);
  }
};

[[noreturn]] WEBEXEC_API void throw_no_state();
[[noreturn]] WEBEXEC_API void throw_cancelled();
[[noreturn]] WEBEXEC_API void throw_timeout();
[[noreturn]] WEBEXEC_API void throw_type_mismatch(const std::type_info& stored,
                                                  const std::type_info& requested);

/// What `Future<T>` and `AnyFuture` share: the state queries, cancel, wait
/// and exception. Documented here once.
class FutureBase {
 public:
  /// False for a default-constructed or moved-from handle, whose other
  /// members throw `InvalidStateError`.
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }

  /// The current state. Thread safety: every member is safe to call
  /// concurrently on the same or different handles.
  [[nodiscard]] FutureState state() const { return checked().state(); }

  /// True if cancelled.
  [[nodiscard]] bool cancelled() const { return state() == FutureState::cancelled; }

  /// True while the task runs.
  [[nodiscard]] bool running() const { return state() == FutureState::running; }

  /// True once finished or cancelled.
  [[nodiscard]] bool done() const { return checked().done(); }

  /// Cancels a pending future. True if it is now cancelled (also if it
  /// already was); false once it runs or has finished. A cancelled future
  /// is done at once: waiters wake and callbacks run on this thread.
  bool cancel() { return checked().cancel(); }

  /// Asks a running task that takes a `std::stop_token` to stop (the token
  /// reports `stop_requested()`). Returns false if the task takes no token,
  /// so it cannot be asked; it does not cancel a pending task (see cancel()).
  bool request_stop() { return checked().request_stop(); }

  /// True once a stop was requested by `request_stop()` or by
  /// `shutdown(cancel_futures=true)`.
  [[nodiscard]] bool stop_requested() const { return checked().stop_requested(); }

  /// Blocks until done or until `timeout`; returns `done()`.
  bool wait(Timeout timeout = {}) const {  // NOLINT(modernize-use-nodiscard)
    StateBase& s = checked();
    return s.done() || s.wait_until(timeout.deadline());
  }

  /// The task's exception, or null if it returned normally.
  /// Throws: `CancelledError` if cancelled; `TimeoutError` after `timeout`.
  [[nodiscard]] std::exception_ptr exception(Timeout timeout = {}) const {
    StateBase& s = wait_done(timeout);
    return s.error();
  }

 protected:
  FutureBase() noexcept = default;
  explicit FutureBase(StateBase* adopted) noexcept : state_(adopted) {}
  FutureBase(const FutureBase& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->add_ref();
  }
  FutureBase(FutureBase&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  FutureBase& operator=(const FutureBase& other) noexcept {
    FutureBase copy(other);
    std::swap(state_, copy.state_);
    return *this;
  }
  FutureBase& operator=(FutureBase&& other) noexcept {
    FutureBase moved(std::move(other));
    std::swap(state_, moved.state_);
    return *this;
  }
  ~FutureBase() {
    if (state_ != nullptr) state_->release();
  }

  [[nodiscard]] StateBase& checked() const {
    if (state_ == nullptr) throw_no_state();
    return *state_;
  }

  /// Waits, then throws for cancelled and timed-out futures.
  StateBase& wait_done(const Timeout& timeout) const {
    StateBase& s = checked();
    if (!s.done() && !s.wait_until(timeout.deadline())) throw_timeout();
    if (s.state() == FutureState::cancelled) throw_cancelled();
    return s;
  }

  /// Like wait_done(), and rethrows the task's exception.
  StateBase& wait_value(const Timeout& timeout) const {
    StateBase& s = wait_done(timeout);
    if (s.error()) std::rethrow_exception(s.error());
    return s;
  }

  template <typename Handle, typename Fn>
  void add_callback(Fn&& fn) const;

  friend StateBase* state_of(const FutureBase& f) noexcept { return f.state_; }

  StateBase* state_ = nullptr;
};

template <typename Handle, typename Fn>
class UserCallback final : public CallbackNode {
 public:
  explicit UserCallback(Fn fn) : fn_(std::move(fn)) {}
  void invoke(StateBase& state) noexcept override {
    try {
      state.add_ref();
      fn_(FutureAccess::adopt<Handle>(&state));
    } catch (...) {
      report_error("done callback", std::current_exception());
    }
  }

 private:
  Fn fn_;
};

template <typename Handle, typename Fn>
void FutureBase::add_callback(Fn&& fn) const {
  StateBase& s = checked();
  CallbackNode* node = new UserCallback<Handle, std::decay_t<Fn>>(std::forward<Fn>(fn));
  // An Executor's future: the callback runs in the context of its registration.
  if (s.task_context() != nullptr) node = wrap_in_context(s, node);
  s.add_callback(node);
}

}  // namespace detail

/// A typed handle to the result of one task. See the file comment.
template <typename T>
class Future : public detail::FutureBase {
  static_assert(!std::is_reference_v<T>, "Future<T&> is not supported; use std::reference_wrapper");

 public:
  using value_type = T;

  /// An empty handle: valid() is false.
  Future() noexcept = default;

  /// Blocks until done, then returns the value (by reference: it lives as
  /// long as any handle), or rethrows the task's exception.
  /// Throws: `CancelledError` if cancelled, `TimeoutError` after `timeout`,
  /// `InvalidStateError` if called from inside this future's own task.
  decltype(auto) result(Timeout timeout = {}) const& {
    return static_cast<detail::ResultState<T>&>(wait_value(timeout)).value();
  }

  /// On a temporary handle the value is copied out, so it cannot dangle.
  T result(Timeout timeout = {}) const&& {
    if constexpr (std::is_void_v<T>) {
      wait_value(timeout);
    } else {
      return static_cast<detail::ResultState<T>&>(wait_value(timeout)).value();
    }
  }

  /// Calls `fn(future)` once this future is done, with a handle to it, in
  /// the order added.
  ///
  /// Callbacks run on: the thread that completes the future (a worker, or
  /// the thread calling cancel()/set_result()), or at once on this thread if
  /// the future is already done.
  /// Throws: nothing from `fn`; its exceptions go to the callback error
  /// handler (see set_callback_error_handler()) and later callbacks still run.
  template <typename Fn>
  void add_done_callback(Fn&& fn) const {
    static_assert(std::is_invocable_v<std::decay_t<Fn>&, Future<T>>,
                  "a done callback is called with the Future");
    add_callback<Future<T>>(std::forward<Fn>(fn));
  }

 private:
  friend class AnyFuture;
  friend class Promise<T>;
  friend struct detail::FutureAccess;

  static Future adopt(detail::StateBase* state) noexcept { return Future(state); }
  explicit Future(detail::StateBase* adopted) noexcept : FutureBase(adopted) {}
};

/// A type-erased future: what collections and HTTP status routes hold.
/// Every `Future<T>` converts to one. It offers the state queries, wait,
/// cancel and exception, and a typed accessor for the result.
class AnyFuture : public detail::FutureBase {
 public:
  AnyFuture() noexcept = default;

  template <typename T>
  AnyFuture(const Future<T>& f) noexcept  // NOLINT(google-explicit-constructor)
      : FutureBase(static_cast<const detail::FutureBase&>(f)) {}

  template <typename T>
  AnyFuture(Future<T>&& f) noexcept  // NOLINT(google-explicit-constructor)
      : FutureBase(static_cast<detail::FutureBase&&>(f)) {}

  /// `typeid` of the result type (`typeid(void)` for `Future<void>`).
  [[nodiscard]] const std::type_info& result_type() const { return checked().result_type(); }

  /// True if the result type is `T`.
  template <typename T>
  [[nodiscard]] bool holds() const {
    return checked().result_type() == typeid(T);
  }

  /// The typed handle. Throws `std::invalid_argument` naming both types if
  /// the result type is not `T`.
  template <typename T>
  [[nodiscard]] Future<T> as() const {
    detail::StateBase& s = checked();
    if (s.result_type() != typeid(T)) detail::throw_type_mismatch(s.result_type(), typeid(T));
    s.add_ref();
    return Future<T>::adopt(&s);
  }

  /// `as<T>().result(timeout)`, returned by value.
  template <typename T>
  T result(Timeout timeout = {}) const {
    return as<T>().result(timeout);
  }

  /// Like `Future<T>::add_done_callback`, with an `AnyFuture` argument.
  template <typename Fn>
  void add_done_callback(Fn&& fn) const {
    static_assert(std::is_invocable_v<std::decay_t<Fn>&, AnyFuture>,
                  "a done callback is called with the AnyFuture");
    add_callback<AnyFuture>(std::forward<Fn>(fn));
  }

  friend bool operator==(const AnyFuture& a, const AnyFuture& b) noexcept {
    return state_of(a) == state_of(b);
  }

 private:
  friend struct detail::FutureAccess;
  static AnyFuture adopt(detail::StateBase* state) noexcept { return AnyFuture(state); }
  explicit AnyFuture(detail::StateBase* adopted) noexcept : FutureBase(adopted) {}
};

/// The producer side of a future: what executors that complete futures
/// elsewhere (process workers, Redis) use. Move-only: one producer.
///
/// Destroying a promise whose future is not done completes the future with
/// `BrokenPromise`, so no waiter hangs.
///
/// Example:
/// ```
/// webexec::Promise<int> p;
/// webexec::Future<int> f = p.future();
/// if (p.set_running_or_notify_cancel()) p.set_result(7);
/// ```
template <typename T>
class Promise {
 public:
  Promise() : state_(new detail::PromiseState<T>()) {}
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  Promise(Promise&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Promise& operator=(Promise&& other) noexcept {
    Promise moved(std::move(other));
    std::swap(state_, moved.state_);
    return *this;
  }
  ~Promise() {
    if (state_ == nullptr) return;
    if (state_->try_claim()) {
      state_->finish_with_error(
          std::make_exception_ptr(BrokenPromise("promise destroyed before setting a result")));
    }
    state_->release();
  }

  /// A handle to the future this promise completes.
  [[nodiscard]] Future<T> future() const {
    checked().add_ref();
    return Future<T>::adopt(state_);
  }

  /// Python's `set_running_or_notify_cancel()`: false if the future was
  /// cancelled (do not run the work), true after moving it to running.
  /// Throws: `InvalidStateError` if it is already running or done.
  bool set_running_or_notify_cancel() { return checked().set_running_or_notify_cancel(); }

  /// Stores the result and completes the future; callbacks run on this thread.
  /// Throws: `InvalidStateError` if the future is already done.
  template <typename... A>
  void set_result(A&&... value) {
    claim();
    state_->finish_with_value(std::forward<A>(value)...);
  }

  /// Stores an exception and completes the future.
  /// Throws: `InvalidStateError` if the future is already done.
  void set_exception(std::exception_ptr error) {
    claim();
    state_->finish_with_error(std::move(error));
  }

 private:
  detail::PromiseState<T>& checked() const {
    if (state_ == nullptr) detail::throw_no_state();
    return *state_;
  }
  void claim();

  detail::PromiseState<T>* state_;
};

namespace detail {
[[noreturn]] WEBEXEC_API void throw_already_done(FutureState state);
}  // namespace detail

template <typename T>
void Promise<T>::claim() {
  if (!checked().try_claim()) detail::throw_already_done(state_->state());
}

}  // namespace webexec
