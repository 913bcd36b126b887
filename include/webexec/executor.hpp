/// `Executor`: Flask-Executor's `Executor`, for C++ web services.
///
/// It holds the configuration, the captured contexts and the stored
/// futures, and forwards the work to one engine (detail/engine.hpp), picked
/// once at init_app by EXECUTOR_TYPE: thread tasks go straight to the
/// engine's ThreadPoolExecutor (an inlined template path); registered jobs
/// for a remote engine (processes) become one RemoteJob
/// (detail/remote_job.hpp). See docs/design.md, "Engines".
///
/// An `Executor` is bound to an `App` (at construction, or later with
/// `init_app` for the application-factory pattern), reads its configuration
/// from the app's config or the environment, and runs each task inside a
/// copy of the submitting context: `current_app()`, `current_request()` and
/// `g()` work in the task, its default done callbacks and every callback
/// added to its future.
///
/// Configuration (a named executor prefixes each key with `NAME_`, the name
/// in upper case; a key missing from the app config is read from the
/// process environment; the app config wins):
///
/// | key | values | default |
/// |---|---|---|
/// | `EXECUTOR_TYPE` | `thread` or `process` | `thread` |
/// | `EXECUTOR_MAX_WORKERS` | integer >= 1 | threads: min(32, CPUs + 4); processes: CPUs |
/// | `EXECUTOR_FUTURES_MAX_LENGTH` | integer >= 1 | 50 |
/// | `EXECUTOR_FUTURES_TTL` | seconds, integer >= 1 | none |
/// | `EXECUTOR_PROPAGATE_EXCEPTIONS` | boolean | false |
/// | `EXECUTOR_PUSH_APP_CONTEXT` | boolean | true |
/// | `EXECUTOR_MAX_TASKS_PER_CHILD` | integer >= 1 (process only) | none |
/// | `EXECUTOR_TASK_TIMEOUT` | seconds > 0, decimals allowed (process only) | none |
///
/// Example:
/// ```
/// webexec::App app("example");
/// webexec::Executor executor(app);
/// auto f = executor.submit([] { return webexec::current_request().path; });
/// executor.submit_stored("calc_power", big_pow, 323, 1235);
/// auto fib = executor.job("fib", [](int n) { return slow_fib(n); });
/// int direct = fib(10);               // still callable
/// auto later = fib.submit(30);
/// ```
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/context_json.hpp"
#include "webexec/detail/engine.hpp"
#include "webexec/detail/executor_settings.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/mutex.hpp"
#include "webexec/detail/remote_job.hpp"
#include "webexec/engine_stats.hpp"
#include "webexec/future.hpp"
#include "webexec/future_collection.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/map_result.hpp"
#include "webexec/thread_pool_executor.hpp"

namespace webexec {

class Executor;

namespace detail {

/// Runs an executor's task inside its captured context; the context lives
/// with the future's state, so callbacks can run in it too.
class ExecutorAttachment {
 public:
  /// Takes the context that `capture()` returns, built in place.
  template <typename Capture>
  requires std::is_invocable_r_v<TaskContext, Capture>
  explicit ExecutorAttachment(Capture&& capture) : ctx_(std::forward<Capture>(capture)()) {}

  TaskContext* context() noexcept { return &ctx_; }

  template <typename F>
  void invoke(F&& f) {
    try {
      run_in_context(ctx_, std::forward<F>(f));
    } catch (...) {
      const ExecutorSettings* settings = ctx_.block()->executor;
      if (settings != nullptr && settings->propagate_exceptions) {
        report_task_error(*settings, ctx_.label(), std::current_exception());
      }
      throw;
    }
  }

 private:
  TaskContext ctx_;
};

template <typename Fn, typename = void>
struct HasJobSignature : std::false_type {};
template <typename Fn>
struct HasJobSignature<Fn, std::void_t<decltype(std::function{std::declval<Fn>()})>>
    : std::true_type {};

template <typename T>
concept JsonReadable = std::is_void_v<T> || requires(const nlohmann::json& j) {
  j.get<T>();
};
template <typename T>
concept JsonWritable = std::is_constructible_v<nlohmann::json, const T&>;

/// True if `fn(args...)` can run in another process: `Fn` has one call
/// signature, and its arguments and result convert to and from JSON.
template <typename Fn, typename... Args>
constexpr bool process_callable() {
  if constexpr (!HasJobSignature<Fn>::value) {
    return false;
  } else {
    using R = typename job_signature_t<Fn>::result;
    return JsonReadable<R> && (JsonWritable<std::decay_t<Args>> && ...);
  }
}

/// True if `Fn` can be registered as a job (see JobRegistry::add).
template <typename Fn>
constexpr bool registrable_job() {
  if constexpr (!HasJobSignature<Fn>::value) {
    return false;
  } else {
    using Sig = job_signature_t<Fn>;
    using R = typename Sig::result;
    return (std::is_void_v<R> || JsonWritable<R>)&&[]<typename... A>(std::tuple<A...>*) {
      return (JsonReadable<A> && ...);
    }(static_cast<typename Sig::args*>(nullptr));
  }
}

using DefaultCallback = std::function<void(const AnyFuture&)>;

/// Runs a default done callback inside a copy of the task's own context.
class WEBEXEC_API DefaultCallbackNode final : public CallbackNode {
 public:
  explicit DefaultCallbackNode(std::shared_ptr<const DefaultCallback> fn) : fn_(std::move(fn)) {}
  void invoke(StateBase& state) noexcept override;

 private:
  std::shared_ptr<const DefaultCallback> fn_;
};

/// The default done callbacks of one submit, allocated before its task state
/// is built: attaching them cannot fail, so a failed allocation never
/// strands a built task. Empty (no allocation) without default callbacks.
class DefaultCallbackNodes {
 public:
  void attach_to(StateBase& task) noexcept {
    for (auto& node : nodes_) task.add_callback(node.release());
    nodes_.clear();
  }
  std::vector<std::unique_ptr<CallbackNode>> nodes_;
};

}  // namespace detail

namespace detail {
template <typename Fn, typename... Args>
auto submit_job(Executor& executor, const Fn& fn, const std::string& name,
                const std::optional<Clock::duration>& timeout, std::string label,
                std::shared_ptr<ProgressSlot> progress, Args&&... args)
    -> Future<task_result_t<const Fn&, Args...>>;
}  // namespace detail

/// A function bound to an executor, as `@executor.job` makes in Python.
/// Unlike upstream's ExecutorJob it stays directly callable.
template <typename Fn>
class Job {
 public:
  Job(Executor& executor, std::string name, Fn fn)
      : executor_(&executor), name_(std::move(name)), fn_(std::move(fn)) {}

  /// Calls the function synchronously on this thread.
  template <typename... Args>
  decltype(auto) operator()(Args&&... args) const {
    return std::invoke(fn_, std::forward<Args>(args)...);
  }

  /// `executor.submit(fn, args...)`.
  template <typename... Args>
  [[nodiscard]] auto submit(Args&&... args) const;

  /// `executor.submit_stored(key, fn, args...)`.
  template <typename... Args>
  auto submit_stored(std::string key, Args&&... args) const;

  /// `executor.map(fn, ranges..., [timeout])`.
  template <typename... RangesAndTimeout>
  [[nodiscard]] auto map(RangesAndTimeout&&... args) const;

  /// A copy of this job whose submissions get time limit `limit` (process
  /// executors kill a worker that exceeds it; overrides EXECUTOR_TASK_TIMEOUT).
  [[nodiscard]] Job with_timeout(std::chrono::steady_clock::duration limit) const {
    Job copy = *this;
    copy.timeout_ = limit;
    return copy;
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const Fn& function() const noexcept { return fn_; }

 private:
  Executor* executor_;
  std::string name_;
  Fn fn_;
  std::optional<std::chrono::steady_clock::duration> timeout_;
};

/// Flask-Executor's `Executor`. See the file comment.
///
/// Thread safety: every member may be called concurrently from any thread
/// (request handlers, tasks, callbacks), except construction, init_app and
/// the destructor.
class WEBEXEC_API Executor {
 public:
  /// An executor to bind later with init_app (application-factory pattern).
  /// Throws: `std::invalid_argument` if `name` is not `^\w*$` (ASCII).
  explicit Executor(std::string name = "");

  /// `Executor(app, name)`: validates the name and calls init_app(app).
  Executor(App& app, std::string name = "");

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// shutdown(wait=true), then unregisters from the app's extensions.
  ///
  /// Destroyed on one of its own worker threads (by a task, or by a done
  /// callback that a worker runs), it cannot wait for that thread: the
  /// queued tasks are cancelled (their callbacks run on this thread), every
  /// other worker is joined, and the calling thread exits once its current
  /// task or callback returns. That task must not use the executor after
  /// destroying it. A task on another worker that waits for the destroying
  /// one would deadlock the destructor, as any cycle of waits does.
  ~Executor();

  /// Reads the configuration, starts the engine and registers this executor
  /// in `app`'s extensions as name + "executor". Every key is validated
  /// before anything starts.
  /// Throws: `std::invalid_argument`/`std::out_of_range` naming a bad key
  /// and value; `InvalidStateError` if already initialised (init_app is not
  /// idempotent: call it once).
  void init_app(App& app);

  /// Schedules `fn(args...)` in a copy of the current context.
  /// Throws: `InvalidStateError` before init_app; as ThreadPoolExecutor::submit.
  template <typename Fn, typename... Args>
  [[nodiscard]] auto submit(Fn&& fn, Args&&... args) {
    // The engine was picked at init_app: a thread engine's pool (cached),
    // or a remote engine that runs registered jobs. No branch per engine.
    if (pool_) [[likely]] {
      return submit_in(
          *pool_, [this] { return capture(); }, std::forward<Fn>(fn), std::forward<Args>(args)...);
    }
    if (remote_) return submit_registered({}, nullptr, fn, std::forward<Args>(args)...);
    throw_no_thread_engine();
  }

  /// Like Python's `map`, with one context copy per item (upstream shares
  /// one, #53). Default done callbacks apply to every item.
  template <typename Fn, typename... RangesAndTimeout>
  [[nodiscard]] auto map(Fn&& fn, RangesAndTimeout&&... args) {
    auto submit_one = [&](auto&&... item) {
      return submit(fn, std::forward<decltype(item)>(item)...);
    };
    return detail::map_args(submit_one, std::forward<RangesAndTimeout>(args)...);
  }

  /// submit(), and stores the future in futures() under `key`. The key is
  /// checked, and room made, before anything is scheduled.
  /// Throws: `std::invalid_argument` for a duplicate key and
  /// `CapacityError` when the collection is full of unfinished futures; in
  /// both cases the task never runs.
  template <typename Fn, typename... Args>
  auto submit_stored(std::string key, Fn&& fn, Args&&... args) {
    using R = detail::task_result_t<Fn, Args...>;
    if (remote_) check_registered(fn);
    return store<R>(
        std::move(key),
        [&](std::string label, std::shared_ptr<detail::ProgressSlot> progress) -> Future<R> {
          if (remote_) {
            return submit_registered(std::move(label), std::move(progress), fn,
                                     std::forward<Args>(args)...);
          }
          return submit_labelled(std::move(label), std::move(progress), std::forward<Fn>(fn),
                                 std::forward<Args>(args)...);
        });
  }

  /// Wraps `fn` as a Job named `name` (used in error reports).
  /// A named job whose arguments and result convert to JSON is also
  /// registered in `JobRegistry::global()`, so a process executor can run it
  /// (create it at namespace scope, before the fork server starts).
  /// Throws: `std::invalid_argument` if the name is taken by another function.
  template <typename Fn>
  [[nodiscard]] Job<std::decay_t<Fn>> job(std::string name, Fn&& fn) {
    if constexpr (detail::registrable_job<std::decay_t<Fn>>()) {
      if (!name.empty()) JobRegistry::global().add(name, std::decay_t<Fn>(fn));
    }
    return Job<std::decay_t<Fn>>(*this, std::move(name), std::forward<Fn>(fn));
  }
  template <typename Fn>
  [[nodiscard]] Job<std::decay_t<Fn>> job(Fn&& fn) {
    return job(std::string(), std::forward<Fn>(fn));
  }

  /// Adds `fn(future)` to every future this executor creates from now on
  /// (map items included). It runs inside the task's context, on the
  /// thread that completes the future.
  void add_default_done_callback(std::function<void(const AnyFuture&)> fn);

  /// Shuts the engine down; see ThreadPoolExecutor::shutdown.
  void shutdown(bool wait = true, bool cancel_futures = false);

  /// True once shutdown() has been called (thread or process engine).
  ///
  /// Thread safety: safe to call concurrently with any member but the
  /// destructor.
  /// Throws: `InvalidStateError` before init_app.
  [[nodiscard]] bool is_shutdown() const;

  /// The stored futures.
  [[nodiscard]] FutureCollection& futures() noexcept { return futures_; }

  [[nodiscard]] const std::string& name() const noexcept { return settings_.name; }
  /// The app, or null before init_app.
  [[nodiscard]] App* app() const noexcept { return settings_.app; }
  /// The prefixed config key, e.g. "CUSTOM_EXECUTOR_TYPE" for "EXECUTOR_TYPE".
  [[nodiscard]] std::string config_key(std::string_view key) const;
  /// Worker count of the engine. Throws before init_app.
  [[nodiscard]] int max_workers() const;

  /// True if EXECUTOR_TYPE is "process".
  [[nodiscard]] bool is_process() const noexcept {
    return engine_ != nullptr && engine_->kind() == detail::EngineKind::process;
  }

  /// The pids of the worker processes (process executors; empty otherwise).
  [[nodiscard]] std::vector<pid_t> worker_pids() const;

  /// The engine's counters: submitted, queued, running, finished by state,
  /// and for worker engines restarts, redeliveries and dead-lettered jobs.
  /// Counting costs the thread engine no atomic read-modify-write per task
  /// (per-thread slots); see EngineStats for a snapshot's consistency.
  ///
  /// Thread safety: safe to call concurrently with any member but the
  /// destructor. Throws: `InvalidStateError` before init_app.
  [[nodiscard]] EngineStats stats() const;

 private:
  template <typename Fn>
  friend class Job;
  template <typename Fn, typename... Args>
  friend auto detail::submit_job(Executor& executor, const Fn& fn, const std::string& name,
                                 const std::optional<detail::Clock::duration>& timeout,
                                 std::string label, std::shared_ptr<detail::ProgressSlot> progress,
                                 Args&&... args)
      -> Future<detail::task_result_t<const Fn&, Args...>>;

  /// submit_stored's common part: reserves `key` and makes room (both
  /// checked before anything is scheduled), then stores the future that
  /// `submit_one(label, progress)` returns under it.
  template <typename R, typename SubmitOne>
  Future<R> store(std::string key, SubmitOne&& submit_one) {
    Future<R> out;
    std::string label = key;
    futures_.add_checked(std::move(key), [&] {
      auto progress = std::make_shared<detail::ProgressSlot>();
      out = std::forward<SubmitOne>(submit_one)(std::move(label), progress);
      return FutureCollection::Stored{AnyFuture(out), renderer_for<R>(), std::move(progress)};
    });
    return out;
  }

  template <typename Fn, typename... Args>
  auto submit_labelled(std::string label, std::shared_ptr<detail::ProgressSlot> progress, Fn&& fn,
                       Args&&... args) {
    auto capture_labelled = [&] {
      detail::TaskContext ctx = capture();
      if (!label.empty() || progress) ctx.set_job(std::move(label), std::move(progress));
      return ctx;
    };
    return submit_in(thread_pool(), capture_labelled, std::forward<Fn>(fn),
                     std::forward<Args>(args)...);
  }

  /// Schedules `fn(args...)` on the thread engine in the context that
  /// `make_ctx()` returns. The task state calls it while it is built, before
  /// `args` are moved in: a task given `std::move(g())` sees the request's g.
  template <typename MakeCtx, typename Fn, typename... Args>
  auto submit_in(ThreadPoolExecutor& pool, MakeCtx&& make_ctx, Fn&& fn, Args&&... args) {
    detail::DefaultCallbackNodes callbacks = default_callbacks();
    return pool.submit_attached<detail::ExecutorAttachment>(
        std::forward<MakeCtx>(make_ctx),
        [&callbacks](detail::StateBase& task) noexcept { callbacks.attach_to(task); },
        std::forward<Fn>(fn), std::forward<Args>(args)...);
  }

  /// The remote path (process, later redis): a registered job, its
  /// arguments and the context as JSON, made into one RemoteJob by
  /// make_remote_job(); the future completes on the engine's thread.
  template <typename Fn, typename... Args>
  auto submit_remote(const std::string& job, std::optional<detail::Clock::duration> timeout,
                     std::string label, std::shared_ptr<detail::ProgressSlot> progress,
                     Args&&... args) {
    using R = typename detail::job_signature_t<Fn>::result;
    engine_->check_job(job);
    nlohmann::json arguments = job_arguments(args...);  // fails here, before anything runs
    detail::TaskContext ctx = detail::capture_context(settings_);
    if (!label.empty() || progress) ctx.set_job(label, progress);
    // Everything that can fail is made before the state: once it exists,
    // the job below holds its reference and releases it if submit throws.
    detail::DefaultCallbackNodes callbacks = default_callbacks();
    std::unique_ptr<detail::RemoteJob> request =
        detail::make_remote_job(job, std::move(arguments), ctx, app_json_for(ctx).get(), label,
                                std::move(progress), timeout ? timeout : task_timeout_);
    auto* state = new detail::RemoteTaskState<R>(std::move(ctx));
    state->preset_refs(2);  // the future's and the job's
    request->bind(state);
    Future<R> future = detail::FutureAccess::adopt<Future<R>>(state);
    callbacks.attach_to(*state);
    engine_->submit(std::move(request));
    return future;
  }

  /// A process executor runs only registered functions: a function pointer
  /// registered under a name is looked up; anything else is refused.
  template <typename Fn, typename... Args>
  auto submit_registered(std::string label, std::shared_ptr<detail::ProgressSlot> progress,
                         const Fn& fn, Args&&... args)
      -> Future<detail::task_result_t<const Fn&, Args...>> {
    using F = std::decay_t<Fn>;
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>> &&
                  detail::process_callable<F, Args...>()) {
      const std::string name = JobRegistry::global().name_of(fn);
      if (!name.empty()) {
        if (label.empty()) label = name;
        return submit_remote<F>(name, std::nullopt, std::move(label), std::move(progress),
                                std::forward<Args>(args)...);
      }
    }
    throw_not_registered();
  }

  template <typename Fn>
  void check_registered(const Fn& fn) const {
    using F = std::decay_t<Fn>;
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
      if (!JobRegistry::global().name_of(fn).empty()) return;
    }
    throw_not_registered();
  }

  void detach_from_app() noexcept;
  /// The app's JSON for a process job, cached while the config is unchanged.
  [[nodiscard]] std::shared_ptr<const nlohmann::json> app_json_for(
      const detail::TaskContext& ctx) const;
  [[noreturn]] void throw_not_registered() const;
  [[noreturn]] void throw_not_process_callable(const std::string& job) const;

  /// capture_context(), with the common case inlined: another submit in the
  /// same request with g unchanged reuses the request's cached block.
  detail::TaskContext capture() {
    detail::Ambient& a = detail::ambient();
    if (a.task == nullptr && a.request != nullptr &&
        a.request->has_cached_block_for(settings_.id)) {
      return detail::TaskContext(a.request->cached_block());
    }
    return detail::capture_context(settings_);
  }

  /// The thread engine's pool, for the thread-only paths.
  ThreadPoolExecutor& thread_pool() {
    if (pool_) return *pool_;
    throw_no_thread_engine();
  }
  /// The engine; throws InvalidStateError before init_app.
  [[nodiscard]] const detail::Engine& engine() const;
  [[noreturn]] void throw_no_thread_engine() const;
  /// Nodes for the default done callbacks registered so far, to attach to
  /// the next task. Throws: `std::bad_alloc`.
  detail::DefaultCallbackNodes default_callbacks() {
    if (!has_default_callbacks_.load(std::memory_order_acquire)) return {};
    return default_callbacks_slow();
  }
  detail::DefaultCallbackNodes default_callbacks_slow();

  detail::ExecutorSettings settings_;
  FutureCollection futures_;
  std::unique_ptr<detail::Engine> engine_;
  // Cached from engine_ at init_app: the thread fast path (null otherwise),
  // and whether tasks go out as registered jobs (process, redis).
  ThreadPoolExecutor* pool_ = nullptr;
  bool remote_ = false;
  std::optional<detail::Clock::duration> task_timeout_;
  mutable detail::Mutex app_json_mutex_;
  mutable std::uint64_t app_json_version_ WEBEXEC_GUARDED_BY(app_json_mutex_) = UINT64_MAX;
  mutable std::shared_ptr<const nlohmann::json> app_json_ WEBEXEC_GUARDED_BY(app_json_mutex_);
  mutable detail::Mutex callbacks_mutex_;
  std::shared_ptr<const std::vector<std::shared_ptr<const detail::DefaultCallback>>>
      default_callbacks_ WEBEXEC_GUARDED_BY(callbacks_mutex_);
  std::atomic<bool> has_default_callbacks_{false};
};

namespace detail {

/// Submits job `job` with `label` and `progress` to its executor, by the
/// process path when the executor runs processes.
template <typename Fn, typename... Args>
auto submit_job(Executor& executor, const Fn& fn, const std::string& name,
                const std::optional<Clock::duration>& timeout, std::string label,
                std::shared_ptr<ProgressSlot> progress, Args&&... args)
    -> Future<task_result_t<const Fn&, Args...>> {
  if (executor.remote_) {
    if constexpr (process_callable<Fn, Args...>()) {
      if (name.empty()) {
        throw std::invalid_argument(
            "a process executor runs named jobs only: use executor.job(\"name\", fn)");
      }
      return executor.template submit_remote<Fn>(name, timeout, std::move(label),
                                                 std::move(progress), std::forward<Args>(args)...);
    } else {
      executor.throw_not_process_callable(name);
    }
  }
  return executor.submit_labelled(std::move(label), std::move(progress), fn,
                                  std::forward<Args>(args)...);
}

}  // namespace detail

template <typename Fn>
template <typename... Args>
auto Job<Fn>::submit(Args&&... args) const {
  return detail::submit_job(*executor_, fn_, name_, timeout_, name_, nullptr,
                            std::forward<Args>(args)...);
}

template <typename Fn>
template <typename... Args>
auto Job<Fn>::submit_stored(std::string key, Args&&... args) const {
  using R = detail::task_result_t<const Fn&, Args...>;
  return executor_->store<R>(
      std::move(key), [&](std::string label, std::shared_ptr<detail::ProgressSlot> progress) {
        return detail::submit_job(*executor_, fn_, name_, timeout_, std::move(label),
                                  std::move(progress), std::forward<Args>(args)...);
      });
}

template <typename Fn>
template <typename... RangesAndTimeout>
auto Job<Fn>::map(RangesAndTimeout&&... args) const {
  auto submit_one = [this](auto&&... item) {
    return detail::submit_job(*executor_, fn_, name_, timeout_, name_, nullptr,
                              std::forward<decltype(item)>(item)...);
  };
  return detail::map_args(submit_one, std::forward<RangesAndTimeout>(args)...);
}

}  // namespace webexec
