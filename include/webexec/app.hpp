/// `App`: what Flask's application object is to Flask-Executor.
///
/// An `App` has a name, a `Config`, an extensions registry (name -> shared
/// object), teardown hooks that run after every task (Flask's
/// `teardown_appcontext`: release per-task resources there), and an error
/// handler that receives failures nobody else can: a task's exception when
/// `EXECUTOR_PROPAGATE_EXCEPTIONS` is on, a throwing teardown hook.
///
/// The `App` must outlive every `Executor` initialised with it.
///
/// Example:
/// ```
/// webexec::App app("reports");
/// app.config().set("EXECUTOR_MAX_WORKERS", 4);
/// app.teardown_appcontext([](std::exception_ptr) { db_pool().release_thread_connection(); });
/// app.set_error_handler([](const webexec::ErrorReport& r) { log_error(describe(r)); });
/// webexec::Executor executor(app);
/// ```
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "webexec/config.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/mutex.hpp"

namespace webexec {

/// A failure reported to `App::report_error`.
struct ErrorReport {
  std::string origin;    ///< what failed: "task", "done callback", "teardown hook"
  std::string executor;  ///< the executor's name ("" for the unnamed one)
  std::string key;       ///< the stored future's key or the job's name, if any
  std::string message;   ///< the exception's what()
  std::exception_ptr exception;
};

/// How severe a log message is.
enum class LogLevel { debug, info, warning, error };

/// "debug", "info", "warning" or "error".
WEBEXEC_API const char* to_string(LogLevel level) noexcept;

/// One line: `task 'calc_power' of executor 'custom' failed: <message>`.
WEBEXEC_API std::string describe(const ErrorReport& report);

/// The application: name, config, extensions, teardown hooks, error handler.
///
/// Thread safety: every member may be called from any thread.
class WEBEXEC_API App {
 public:
  using TeardownHook = std::function<void(std::exception_ptr error)>;
  using ErrorHandler = std::function<void(const ErrorReport& report)>;
  /// Receives the library's log messages (e.g. a misspelt config key at
  /// init_app). Called on the thread that logs; must be thread-safe.
  using Logger = std::function<void(LogLevel level, std::string_view message)>;

  explicit App(std::string name);
  App(const App&) = delete;
  App& operator=(const App&) = delete;
  ~App();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] Config& config() noexcept { return config_; }
  [[nodiscard]] const Config& config() const noexcept { return config_; }

  /// Registers `extension` under `name`, replacing any previous one.
  template <typename T>
  void set_extension(std::string name, std::shared_ptr<T> extension) {
    set_extension_erased(std::move(name), std::move(extension), typeid(T));
  }

  /// The extension registered under `name`, or null if there is none.
  /// Throws: `std::invalid_argument` if it is not a `T`.
  template <typename T>
  [[nodiscard]] std::shared_ptr<T> extension(std::string_view name) const {
    return std::static_pointer_cast<T>(extension_erased(name, typeid(T)));
  }

  /// Registers `extension` under `name` only if that name is free.
  /// Returns: false (and changes nothing) if the name is taken.
  template <typename T>
  bool add_extension(std::string name, std::shared_ptr<T> extension) {
    return add_extension_erased(std::move(name), std::move(extension), typeid(T));
  }

  [[nodiscard]] bool has_extension(std::string_view name) const;
  bool remove_extension(std::string_view name);
  /// Removes the extension under `name` only if it is `object` (an executor
  /// removing its own entry, never a successor's). Returns: whether it did.
  bool remove_extension(std::string_view name, const void* object);
  [[nodiscard]] std::vector<std::string> extension_names() const;

  /// Adds a hook that runs after every task and done callback that ran with
  /// this app's context, on the same thread, with the exception the task
  /// threw (or null). Hooks run in registration order; one that throws is
  /// reported to the error handler and the rest still run.
  void teardown_appcontext(TeardownHook hook);

  /// True once a teardown hook was added (read after every task).
  [[nodiscard]] bool has_teardown_hooks() const noexcept {
    return has_teardown_.load(std::memory_order_acquire);
  }

  /// Runs the teardown hooks (the executor calls this after each task).
  void do_teardown_appcontext(std::exception_ptr error) const noexcept;

  /// Installs the error handler; an empty one restores the default, which
  /// prints `describe(report)` to stderr.
  void set_error_handler(ErrorHandler handler);

  /// Hands `report` to the error handler. Never throws.
  void report_error(const ErrorReport& report) const noexcept;

  /// Installs the logger; an empty one restores the default, which prints
  /// one line `webexec: app '<name>': <level>: <message>` to stderr, with
  /// control characters escaped so a message is always one line.
  /// Thread safety: may be called from any thread.
  void set_logger(Logger logger);

  /// Hands `message` to the logger, on the calling thread. Never throws. The
  /// library escapes what it echoes (escape_text()); escape untrusted parts of
  /// your own messages the same way.
  void log(LogLevel level, std::string_view message) const noexcept;

  /// Runs `fn` when this app is destroyed (before anything of it goes), so
  /// an executor that outlives its app (a namespace-scope executor with an
  /// app in main) shuts down in time instead of touching a dead app.
  void on_destroy(const void* owner, std::function<void()> fn);
  /// Forgets the on_destroy callback of `owner`.
  void forget_on_destroy(const void* owner);

 private:
  struct Extension {
    std::shared_ptr<void> object;
    std::type_index type;
  };

  void set_extension_erased(std::string name, std::shared_ptr<void> object,
                            const std::type_info& type);
  bool add_extension_erased(std::string name, std::shared_ptr<void> object,
                            const std::type_info& type);
  [[nodiscard]] std::shared_ptr<void> extension_erased(std::string_view name,
                                                       const std::type_info& type) const;

  const std::string name_;
  Config config_;
  mutable detail::Mutex mutex_;
  std::map<std::string, Extension, std::less<>> extensions_ WEBEXEC_GUARDED_BY(mutex_);
  std::shared_ptr<const std::vector<TeardownHook>> teardown_ WEBEXEC_GUARDED_BY(mutex_);
  std::atomic<bool> has_teardown_{false};
  std::shared_ptr<const ErrorHandler> error_handler_ WEBEXEC_GUARDED_BY(mutex_);
  std::shared_ptr<const Logger> logger_ WEBEXEC_GUARDED_BY(mutex_);
  std::vector<std::pair<const void*, std::function<void()>>> on_destroy_ WEBEXEC_GUARDED_BY(mutex_);
};

}  // namespace webexec
