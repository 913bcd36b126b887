/// `ThreadPoolExecutor`: Python's `concurrent.futures.ThreadPoolExecutor`.
///
/// `submit(fn, args...)` decay-copies `fn` and the arguments (as
/// `std::thread` does), queues the call and returns a `Future` of its result.
/// Worker threads start lazily, one per submit that finds no idle worker, up
/// to `max_workers`. Idle workers spin for a few tens of microseconds, then
/// park in the kernel, so an idle pool costs no CPU.
///
/// Example:
/// ```
/// webexec::ThreadPoolExecutor pool({.max_workers = 4, .thread_name_prefix = "io"});
/// auto f = pool.submit([](int a, int b) { return a + b; }, 2, 3);
/// for (int sq : pool.map([](int x) { return x * x; }, std::vector{1, 2, 3})) use(sq);
/// pool.shutdown();   // the destructor does this too
/// ```
///
/// Beyond Python: a task that takes a `std::stop_token` as its first
/// parameter receives one. `Future::request_stop()` sets it, and so does
/// `shutdown(cancel_futures=true)` for every running task.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stop_token>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "webexec/detail/export.hpp"
#include "webexec/detail/task.hpp"
#include "webexec/engine_stats.hpp"
#include "webexec/future.hpp"
#include "webexec/map_result.hpp"
#include "webexec/timeout.hpp"

namespace webexec {

/// Options of a `ThreadPoolExecutor`, Python's constructor arguments.
struct ThreadPoolOptions {
  /// Upper bound on worker threads; default min(32, CPUs available + 4).
  /// Zero or negative is an error.
  std::optional<int> max_workers = std::nullopt;
  /// OS thread names are `<prefix>_<i>` (visible in /proc, truncated to 15
  /// bytes by Linux); default `ThreadPoolExecutor-<n>`.
  std::string thread_name_prefix = {};
  /// Runs at the start of every worker thread. If it throws, the pool is
  /// broken: queued futures fail with `BrokenThreadPool`, and so do later
  /// submits. The exception goes to the error handler.
  std::function<void()> initializer = {};
};

namespace detail {
class PoolCore;
class ThreadEngine;
}  // namespace detail

/// A pool of threads running submitted calls. See the file comment.
///
/// Thread safety: every member may be called concurrently from any thread,
/// including from tasks running on the pool, except the destructor.
class WEBEXEC_API ThreadPoolExecutor {
 public:
  /// A pool with default options.
  ThreadPoolExecutor();
  /// A pool of at most `max_workers` threads.
  /// Throws: `std::invalid_argument` if `max_workers <= 0`.
  explicit ThreadPoolExecutor(int max_workers);
  /// Throws: `std::invalid_argument` if `options.max_workers <= 0`.
  explicit ThreadPoolExecutor(ThreadPoolOptions options);
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  /// `shutdown(wait=true)`: runs every queued task, then joins the workers.
  ///
  /// Destroyed on one of its own threads (by a task, or a done callback run
  /// by a worker), it cannot join that thread: it stops accepting work and
  /// returns at once; the workers run what is still queued and exit on
  /// their own, and the pool's small control block is leaked on purpose so
  /// that they never touch freed memory.
  ~ThreadPoolExecutor();

  /// Schedules `fn(args...)` and returns its future. If `fn` accepts a
  /// `std::stop_token` first, it is called as `fn(token, args...)`.
  ///
  /// Callbacks run on: the worker that ran the task.
  /// Throws: `ShutdownError` after shutdown(), `BrokenThreadPool` once an
  /// initializer failed, `std::system_error` if no thread could be started.
  template <typename Fn, typename... Args>
  [[nodiscard]] Future<detail::task_result_t<Fn, Args...>> submit(Fn&& fn, Args&&... args) {
    return submit_attached<detail::NoAttachment>(
        detail::NoAttachment{}, [](auto&) {}, std::forward<Fn>(fn), std::forward<Args>(args)...);
  }

  /// Python's `map(fn, *iterables, timeout=None)`: submits `fn(a, b, ...)`
  /// for each item of the ranges, zipped (the shortest ends it), and
  /// returns the results lazily in input order. The last argument may be a
  /// `Timeout` (any duration), counted from this call. See `MapResult`.
  ///
  /// Throws: as submit(); earlier items stay submitted.
  template <typename Fn, typename... RangesAndTimeout>
  [[nodiscard]] auto map(Fn&& fn, RangesAndTimeout&&... args) {
    auto submit_one = [&](auto&&... item) {
      return submit(fn, std::forward<decltype(item)>(item)...);
    };
    return detail::map_args(submit_one, std::forward<RangesAndTimeout>(args)...);
  }

  /// Python's `shutdown(wait=True, cancel_futures=False)`.
  ///
  /// Later submits throw `ShutdownError`. With `cancel_futures`, queued
  /// futures are cancelled (and count as done for wait/as_completed) and
  /// running tasks that take a `std::stop_token` are asked to stop. With
  /// `wait`, returns once every worker has exited, after running whatever
  /// is still queued. May be called more than once, also concurrently:
  /// every call with `wait` returns only once all tasks are done, as in
  /// CPython.
  ///
  /// Throws: `InvalidStateError` if `wait` is true and it is called from one
  /// of this pool's own workers (it would join itself).
  void shutdown(bool wait = true, bool cancel_futures = false);

  /// True once shutdown() has been called (by any thread).
  ///
  /// Thread safety: safe to call concurrently with any member but the
  /// destructor.
  [[nodiscard]] bool is_shutdown() const noexcept;

  /// The configured upper bound on threads.
  [[nodiscard]] int max_workers() const noexcept;

  /// Threads started so far (they start lazily).
  [[nodiscard]] std::size_t thread_count() const noexcept;

  /// The pool's counters: submitted, queued, running, and finished by
  /// state (`restarts`, `redeliveries` and `dead_lettered` are zero). Each
  /// thread counts in its own slot with a plain load and store, and this
  /// sums the slots: see EngineStats for the consistency of a snapshot. A
  /// task cancelled while queued counts as queued until a worker (or
  /// shutdown) takes it off the queue.
  ///
  /// Thread safety: safe to call concurrently with any member but the
  /// destructor. Throws: nothing.
  [[nodiscard]] EngineStats stats() const noexcept;

 private:
  friend class Executor;
  friend class detail::ThreadEngine;

  /// submit() with an `Attach` (built in the state from `attach_arg`) that
  /// runs around the callable and lives as long as the state, and a
  /// `prepare(task)` step that runs before the task is queued (so callbacks
  /// it adds never run inline).
  template <typename Attach, typename AttachArg, typename Prepare, typename Fn, typename... Args>
  Future<detail::task_result_t<Fn, Args...>> submit_attached(AttachArg&& attach_arg,
                                                             Prepare&& prepare, Fn&& fn,
                                                             Args&&... args) {
    using R = detail::task_result_t<Fn, Args...>;
    using Task = detail::TaskState<R, Attach, std::decay_t<Fn>, std::decay_t<Args>...>;
    auto* task = new Task(owner(), std::forward<AttachArg>(attach_arg), std::forward<Fn>(fn),
                          std::forward<Args>(args)...);
    if constexpr (detail::takes_stop_token_v<std::decay_t<Fn>, std::decay_t<Args>...>) {
      task->link_stop_token(stop_token());
    }
    task->preset_refs(2);  // one reference for the queue, one for the future
    Future<R> future = detail::FutureAccess::adopt<Future<R>>(task);
    prepare(*task);
    enqueue(task);
    return future;
  }

  /// True on one of this pool's worker threads.
  [[nodiscard]] bool is_own_thread() const noexcept;

  /// For an owner destroyed on one of this pool's workers (`Executor`):
  /// stops accepting work, cancels the queued tasks, joins every other
  /// worker (so no task of the pool runs afterwards but the caller's own)
  /// and detaches the caller's thread. The control block is leaked; the
  /// object may only be destroyed afterwards.
  void abandon_from_worker() noexcept;

  /// Queues a task that holds one reference for the queue.
  void enqueue(detail::StateBase* task);
  [[nodiscard]] const void* owner() const noexcept;
  [[nodiscard]] std::stop_token stop_token() const noexcept;

  std::unique_ptr<detail::PoolCore> core_;
};

}  // namespace webexec
