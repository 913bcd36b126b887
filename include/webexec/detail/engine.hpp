/// The one interface between `Executor` and the engine that runs its tasks
/// (not API; see docs/design.md, "Engines").
///
/// `Executor::init_app` picks the engine once (make_thread_engine or
/// make_process_engine; the redis engine will be a third factory) and from
/// then on talks to it through `Engine` only. Two paths lead into an engine:
///
/// - the thread fast path: a thread engine exposes its `ThreadPoolExecutor`
///   through `thread_pool()`, which Executor caches at init_app, so that a
///   submit stays an inlined template (the task state is built in place);
/// - the registered-job path of remote engines (process, redis): Executor
///   builds one `RemoteJob` (detail/remote_job.hpp) and hands it to
///   `submit()`.
///
/// Every member may be called from any thread, concurrently, unless it says
/// otherwise.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "webexec/detail/export.hpp"
#include "webexec/engine_stats.hpp"

namespace webexec {
class ThreadPoolExecutor;
struct ThreadPoolOptions;
}  // namespace webexec

namespace webexec::detail {

struct RemoteJob;
struct ProcessPoolOptions;

enum class EngineKind { thread, process };

class WEBEXEC_API Engine {
 public:
  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  /// Stops the engine as close() does.
  virtual ~Engine();

  [[nodiscard]] virtual EngineKind kind() const noexcept = 0;

  /// The pool of a thread engine (null for remote engines): Executor's
  /// inlined submit path. Stable for the engine's lifetime.
  [[nodiscard]] virtual ThreadPoolExecutor* thread_pool() noexcept { return nullptr; }

  /// Remote engines: throws unless job `name` can run on this engine's
  /// workers (`std::invalid_argument` if it is not registered,
  /// `InvalidStateError` if the workers cannot have it). Called before the
  /// job's arguments are serialised.
  virtual void check_job(const std::string& name) const = 0;

  /// Remote engines: queues `job`. Its future completes on an engine
  /// thread. A job that cannot be sent (too large, not encodable) fails
  /// its future instead, at once. Throws: `ShutdownError` after shutdown;
  /// `InvalidStateError` on a thread engine.
  virtual void submit(std::unique_ptr<RemoteJob> job) = 0;

  /// Python's shutdown(wait, cancel_futures).
  virtual void shutdown(bool wait, bool cancel_futures) = 0;

  /// shutdown(wait=true) for the owner's destructor, also when it runs on
  /// one of the engine's own threads (which cannot wait for themselves:
  /// see Executor::~Executor). Never throws.
  virtual void close() noexcept = 0;

  [[nodiscard]] virtual bool is_shutdown() const = 0;
  [[nodiscard]] virtual int max_workers() const = 0;
  /// See EngineStats for the consistency a snapshot has.
  [[nodiscard]] virtual EngineStats stats() const = 0;
  /// The worker processes' pids (empty for engines without local workers).
  [[nodiscard]] virtual std::vector<pid_t> worker_pids() const { return {}; }
};

/// A pool of threads in this process.
WEBEXEC_API std::unique_ptr<Engine> make_thread_engine(ThreadPoolOptions options);

/// Worker processes forked from the fork server (POSIX).
WEBEXEC_API std::unique_ptr<Engine> make_process_engine(ProcessPoolOptions options);

}  // namespace webexec::detail
