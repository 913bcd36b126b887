/// Application and request context inside tasks: `current_app()`,
/// `current_request()`, `g()` and `report_progress()`.
///
/// When an `Executor` submits a task it captures, on the submitting thread:
/// - the app (unless `EXECUTOR_PUSH_APP_CONTEXT` is false);
/// - the request, as an immutable `RequestContext` snapshot shared by every
///   task of that request (none outside a request: startup code, a CLI, a
///   timer);
/// - a copy of `g`. Copying is O(1) (copy-on-write): the task gets its own
///   `g`, changes in the task never reach the request and later changes in
///   the request never reach the task.
///
/// The task, its default done callbacks and every done callback added to its
/// future then run inside that context; each callback runs in its own copy,
/// so callbacks running at the same time never share a `g`. A task that
/// submits more work passes its own context on. To test request code without
/// a server, see `TestRequestContext` (test_request_context.hpp).
///
/// Example (inside a task):
/// ```
/// const auto& req = webexec::current_request();       // method, path, headers, body...
/// auto user = webexec::g().get<std::string>("user");   // copied at submit
/// int workers = *webexec::current_app().config().get_int("EXECUTOR_MAX_WORKERS");
/// webexec::report_progress(3, 10, "resizing");
/// ```
#pragma once

#include <any>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include "webexec/app.hpp"
#include "webexec/detail/export.hpp"

namespace webexec {

namespace detail {
class RequestScope;
}  // namespace detail

/// Flask's `g`: per-request storage, copied into each task.
///
/// Values are any copyable C++ objects. Copies share storage until one of
/// them is written (copy-on-write), so a copy costs one atomic increment.
///
/// Thread safety: one `G` object is used by one thread at a time (its
/// request's or its task's); copies may live on any threads.
class WEBEXEC_API G {
 public:
  G() = default;
  G(const G& other) noexcept;
  G(G&& other) noexcept : data_(std::exchange(other.data_, nullptr)) { ++other.writes_; }
  G& operator=(const G& other) noexcept;
  G& operator=(G&& other) noexcept;
  ~G();

  /// Stores `value` under `key`.
  template <typename T>
  void set(std::string key, T&& value) {
    mutable_map().insert_or_assign(std::move(key), std::any(std::forward<T>(value)));
  }

  /// The value under `key`.
  /// Throws: `std::out_of_range` naming the key if missing,
  /// `std::invalid_argument` naming both types if it is not a `T`.
  template <typename T>
  [[nodiscard]] const T& get(std::string_view key) const {
    const std::any& v = at(key);
    if (const T* p = std::any_cast<T>(&v)) return *p;
    throw_bad_type(key, v.type(), typeid(T));
  }

  /// The value under `key` if present and a `T`, else null.
  template <typename T>
  [[nodiscard]] const T* get_if(std::string_view key) const {
    const std::any* v = find(key);
    return v != nullptr ? std::any_cast<T>(v) : nullptr;
  }

  /// The value under `key`, or `fallback`.
  template <typename T>
  [[nodiscard]] T get_or(std::string_view key, T fallback) const {
    const T* p = get_if<T>(key);
    return p != nullptr ? *p : fallback;
  }

  [[nodiscard]] bool contains(std::string_view key) const { return find(key) != nullptr; }

  bool erase(std::string_view key);
  [[nodiscard]] std::size_t size() const noexcept;
  [[nodiscard]] std::vector<std::string> keys() const;

  /// The raw value, if present.
  [[nodiscard]] const std::any* find(std::string_view key) const;

  /// How many times this object has been changed: set, erase, assigned to,
  /// moved from. A request scope reuses its tasks' context block while the
  /// count is the one it saw when it built the block.
  [[nodiscard]] std::uint64_t writes() const noexcept { return writes_; }

 private:
  using Map = std::map<std::string, std::any, std::less<>>;
  struct Data;
  [[nodiscard]] const std::any& at(std::string_view key) const;
  Map& mutable_map();
  [[noreturn]] static void throw_bad_type(std::string_view key, const std::type_info& stored,
                                          const std::type_info& wanted);
  Data* data_ = nullptr;
  std::uint64_t writes_ = 0;
};

/// An immutable snapshot of the request that submitted a task, taken at
/// submit time. It owns every byte: nothing points into the web server.
struct WEBEXEC_API RequestContext {
  using Params = std::vector<std::pair<std::string, std::string>>;

  std::string method = {};  ///< "GET", "POST", ...
  std::string path = {};    ///< URL-decoded path, without the query
  Params query = {};        ///< query-string parameters, in order
  Params form = {};         ///< url-encoded form fields of the body, in order
  Params headers = {};      ///< request headers, minus the server's synthetic ones
  std::string body = {};    ///< the request body
  std::vector<std::string> path_groups = {};  ///< route match groups; [0] is the whole path
  std::string remote_addr = {};               ///< peer address from the socket, never from a header
  int remote_port = -1;
  std::string request_id = {};  ///< sanitized X-Request-Id, or generated

  /// First header named `name` (case-insensitive).
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
  /// First query parameter named `name`.
  [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
  /// First form field named `name`.
  [[nodiscard]] std::optional<std::string> form_param(std::string_view name) const;
};

/// A task's progress, as reported by `report_progress`.
struct Progress {
  double fraction = 0.0;             ///< 0..1
  std::optional<std::int64_t> done;  ///< set by the (done, total) form
  std::optional<std::int64_t> total;
  std::string message;
};

/// The app of the running task, callback or request.
/// Throws: `ContextError` saying why there is none (outside any context, or
/// the executor runs tasks without it: `EXECUTOR_PUSH_APP_CONTEXT=false`).
WEBEXEC_API App& current_app();

/// The request snapshot of the running task or callback, or of the request
/// being handled.
/// Throws: `ContextError` if the task was submitted outside a request.
WEBEXEC_API const RequestContext& current_request();

/// The `g` of the running task or callback (its own copy) or of the request
/// being handled.
/// Throws: `ContextError` outside any context, or without the app context.
WEBEXEC_API G& g();

/// True where current_app() / current_request() would succeed.
WEBEXEC_API bool has_app_context() noexcept;
WEBEXEC_API bool has_request_context() noexcept;

/// Reports the running task's progress as a fraction in [0, 1] (clamped).
/// Readable through `FutureCollection::progress(key)` for stored futures.
/// Returns false (and does nothing) if the running task is not stored.
WEBEXEC_API bool report_progress(double fraction, std::string message = {});

/// Reports progress as `done` of `total` steps.
/// Throws: `std::invalid_argument` if total <= 0 or done is outside [0, total].
WEBEXEC_API bool report_progress(std::int64_t done, std::int64_t total, std::string message = {});

namespace detail {

/// Where a stored task's progress lives; shared by the task and the
/// collection entry.
class WEBEXEC_API ProgressSlot {
 public:
  ProgressSlot() = default;
  /// A slot that also hands every report to `listener` (a worker process
  /// forwards them to the host this way).
  explicit ProgressSlot(std::function<void(const Progress&)> listener)
      : listener_(std::move(listener)) {}

  void set(Progress progress);
  [[nodiscard]] std::optional<Progress> get() const;

 private:
  mutable std::atomic<bool> lock_{false};
  bool has_ = false;
  Progress progress_;
  std::function<void(const Progress&)> listener_;
};

struct ExecutorSettings;

/// The part of a task's context that many tasks share: app, request
/// snapshot, and g as it was at submit. Immutable once built; an executor
/// reuses one block for every task submitted with the same context (the
/// same request with an unchanged g, or no request at all), so a submit
/// costs one reference-count increment, not a copy.
///
/// Thread safety: immutable, so any number of threads may read it; the
/// count is atomic.
struct WEBEXEC_API ContextBlock {
  // Submitting threads write the count while workers read the fields
  // below: separate cache lines, or every submit steals the workers' copy.
  alignas(64) std::atomic<long> refs{1};
  alignas(64) App* app = nullptr;                 ///< null when running without the app context
  const char* no_app_reason = nullptr;            ///< why app is null
  std::shared_ptr<const RequestContext> request;  ///< null outside a request
  G g;                                            ///< g at submit
  const ExecutorSettings* executor = nullptr;     ///< who built it
  std::uint64_t executor_id = 0;  ///< reuse key: unique per executor, unlike its address
};

/// An owning, intrusive reference to a ContextBlock.
class WEBEXEC_API ContextRef {
 public:
  ContextRef() noexcept = default;
  explicit ContextRef(ContextBlock* adopted) noexcept : block_(adopted) {}
  ContextRef(const ContextRef& other) noexcept : block_(other.block_) {
    if (block_ != nullptr) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  ContextRef(ContextRef&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  ContextRef& operator=(ContextRef other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~ContextRef() {
    if (block_ != nullptr && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete block_;
    }
  }
  ContextBlock* get() const noexcept { return block_; }
  /// Gives up ownership without releasing the reference.
  ContextBlock* release() noexcept { return std::exchange(block_, nullptr); }
  ContextBlock* operator->() const noexcept { return block_; }
  explicit operator bool() const noexcept { return block_ != nullptr; }

 private:
  ContextBlock* block_ = nullptr;
};

/// The per-task part of a context, made only when needed: the task's own
/// g (on its first g() call) and, for stored futures and jobs, the label
/// used in error reports and the progress slot. Once made, it holds the
/// task's reference to the shared block.
struct TaskExtra {
  ContextRef block;
  std::optional<G> g;  ///< the task's own g, once made
  std::string label;
  std::shared_ptr<ProgressSlot> progress;
};

/// What a running task or callback sees as its context: a reference to the
/// shared block, plus the per-task extras (none until needed). Copying gives
/// the copy its own g (copy-on-write, O(1)).
///
/// One word, because every task state carries one: it holds either the
/// block (the common case, low bit clear) or, once extras are needed, a
/// TaskExtra that holds the block (low bit set). Both are at least 8-byte
/// aligned.
///
/// Thread safety: one thread at a time uses a context: the task's while it
/// runs, and each done callback runs in a copy of its own, taken when it
/// starts. Copying a context that no thread changes is safe from any number
/// of threads at once.
class WEBEXEC_API TaskContext {
 public:
  TaskContext() noexcept = default;
  explicit TaskContext(ContextRef block) noexcept
      : word_(reinterpret_cast<std::uintptr_t>(block.release())) {}
  TaskContext(const TaskContext& other);
  TaskContext& operator=(const TaskContext& other) {
    if (this != &other) *this = TaskContext(other);
    return *this;
  }
  TaskContext(TaskContext&& other) noexcept : word_(std::exchange(other.word_, 0)) {}
  TaskContext& operator=(TaskContext&& other) noexcept {
    TaskContext old(std::move(*this));
    word_ = std::exchange(other.word_, 0);
    return *this;
  }
  ~TaskContext() {
    if (word_ != 0) release();
  }

  /// The shared block (null for an empty context).
  [[nodiscard]] ContextBlock* block() const noexcept {
    if ((word_ & kExtraBit) != 0) [[unlikely]] {
      return extra()->block.get();
    }
    return reinterpret_cast<ContextBlock*>(word_);
  }
  /// A new reference to the block.
  [[nodiscard]] ContextRef block_ref() const noexcept {
    ContextBlock* b = block();
    if (b != nullptr) b->refs.fetch_add(1, std::memory_order_relaxed);
    return ContextRef(b);
  }

  [[nodiscard]] App* app() const noexcept {
    const ContextBlock* b = block();
    return b != nullptr ? b->app : nullptr;
  }
  [[nodiscard]] const char* no_app_reason() const noexcept {
    const ContextBlock* b = block();
    return b != nullptr ? b->no_app_reason : nullptr;
  }
  [[nodiscard]] const RequestContext* request() const noexcept {
    const ContextBlock* b = block();
    return b != nullptr ? b->request.get() : nullptr;
  }

  /// The task's own g, copied from the block's on first use.
  G& g();
  /// The g a nested submit copies: the task's own if made, else the block's.
  [[nodiscard]] const G& current_g() const noexcept;
  [[nodiscard]] bool has_own_g() const noexcept {
    const TaskExtra* e = extra();
    return e != nullptr && e->g;
  }

  [[nodiscard]] ProgressSlot* progress() const noexcept {
    const TaskExtra* e = extra();
    return e != nullptr ? e->progress.get() : nullptr;
  }
  [[nodiscard]] const std::string& label() const noexcept;
  void set_job(std::string label, std::shared_ptr<ProgressSlot> progress);

 private:
  static constexpr std::uintptr_t kExtraBit = 1;
  [[nodiscard]] TaskExtra* extra() const noexcept {
    return (word_ & kExtraBit) != 0 ? reinterpret_cast<TaskExtra*>(word_ & ~kExtraBit) : nullptr;
  }
  /// The extras, made (holding the block) if there are none yet.
  /// Throws: `std::bad_alloc`, leaving the context as it was.
  TaskExtra& ensure_extra();
  void release() noexcept;

  std::uintptr_t word_ = 0;
};

/// A request being handled, made current by a web adapter for the duration
/// of its handler. The snapshot is built lazily, at the first submit, and
/// then shared by every task of the request.
class WEBEXEC_API RequestScope {
 public:
  explicit RequestScope(App* app) : app_(app) {}
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;
  virtual ~RequestScope();

  [[nodiscard]] App* app() const noexcept { return app_; }
  G& g() noexcept { return g_; }
  const std::shared_ptr<const RequestContext>& snapshot();

  /// True if the cached block was built by the executor with id
  /// `executor_id` and g has not changed since (G::writes()).
  [[nodiscard]] bool has_cached_block_for(std::uint64_t executor_id) const noexcept {
    return cached_for_ == executor_id && cached_g_writes_ == g_.writes();
  }
  /// Caches `block`, built now (from this request's g, if it carries g).
  void set_cached_block(ContextRef block) noexcept;
  /// A new reference to the cached block.
  [[nodiscard]] ContextRef cached_block() const noexcept { return cached_block_; }

 protected:
  [[nodiscard]] virtual std::shared_ptr<const RequestContext> build_snapshot() const = 0;

 private:
  App* app_;
  G g_;
  std::shared_ptr<const RequestContext> snapshot_;
  ContextRef cached_block_;
  std::uint64_t cached_for_ = 0;       // executor id of cached_block_, 0 if none
  std::uint64_t cached_g_writes_ = 0;  // g_.writes() when cached_block_ was built
};

/// The context the current thread runs in.
struct Ambient {
  TaskContext* task = nullptr;      ///< set while a task or callback runs
  RequestScope* request = nullptr;  ///< set while a request handler runs
};
/// The current thread's Ambient (constant-initialised, so reading it is a
/// plain thread-local access, not a call).
WEBEXEC_API extern constinit thread_local Ambient ambient_state;
inline Ambient& ambient() noexcept { return ambient_state; }

/// Makes `scope` the current request for this thread until destroyed.
class WEBEXEC_API ScopedRequest {
 public:
  explicit ScopedRequest(RequestScope* scope) noexcept;
  ScopedRequest(const ScopedRequest&) = delete;
  ScopedRequest& operator=(const ScopedRequest&) = delete;
  ~ScopedRequest();

 private:
  RequestScope* previous_;
};

/// Builds a block: `app` (or none with `no_app_reason`), `request`, `g`.
WEBEXEC_API ContextRef make_block(App* app, const char* no_app_reason,
                                  std::shared_ptr<const RequestContext> request, G g,
                                  const ExecutorSettings* executor = nullptr,
                                  std::uint64_t executor_id = 0);

/// Runs `fn()` inside `ctx` on this thread, then the app's teardown hooks
/// with `fn`'s exception (rethrown afterwards).
template <typename Fn>
void run_in_context(TaskContext& ctx, Fn&& fn);

/// Runs the app's teardown hooks, inside `ctx`, after a task or callback
/// that threw `error`, or (first form) returned.
WEBEXEC_API void run_teardown(TaskContext& ctx) noexcept;
WEBEXEC_API void run_teardown(TaskContext& ctx, std::exception_ptr error) noexcept;

class ScopedTask {
 public:
  explicit ScopedTask(TaskContext& ctx) noexcept
      : ambient_(ambient()), previous_(std::exchange(ambient_.task, &ctx)) {}
  ScopedTask(const ScopedTask&) = delete;
  ScopedTask& operator=(const ScopedTask&) = delete;
  ~ScopedTask() { ambient_.task = previous_; }

 private:
  Ambient& ambient_;
  TaskContext* previous_;
};

template <typename Fn>
void run_in_context(TaskContext& ctx, Fn&& fn) {  // NOLINT(cppcoreguidelines-missing-std-forward)
  {
    const ScopedTask scope(ctx);
    try {
      std::forward<Fn>(fn)();
    } catch (...) {
      run_teardown(ctx, std::current_exception());
      throw;
    }
  }
  if (const App* app = ctx.app(); app != nullptr && app->has_teardown_hooks()) {
    run_teardown(ctx);
  }
}

}  // namespace detail
}  // namespace webexec
