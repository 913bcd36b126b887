/// `RemoteJob`: one registered job on its way to a remote engine (process
/// or redis), and the typed future state it completes (not API).
///
/// Built once, by make_remote_job() (src/jobs/remote_job.cpp), on the
/// submitting thread: the job name, its arguments and the task's context as
/// JSON, its label and progress slot, its time limit, and the completion
/// hooks of its `RemoteTaskState<R>`. The engine that takes it owns it; its
/// future completes on the engine's thread (the process pool's dispatcher).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/future_state.hpp"
#include "webexec/detail/spin.hpp"
#include "webexec/engine_stats.hpp"

namespace webexec::detail {

/// Start slots shared with a worker process (process engine) (one page of memory both map):
/// a job queued in a worker's socket has a slot that the worker moves from
/// `pending` to `started` just before running it, that cancel() moves to
/// `cancelled`, and that the dispatcher moves to `revoked` when it takes the
/// job back to run it elsewhere. Whoever moves it first wins, so a job
/// queued ahead in a worker can still be cancelled or moved, never runs once
/// cancel() said true, and runs at most once. The worker skips a cancelled
/// or revoked slot and says so (`skipped`); until then the slot stays
/// reserved, so a slot is never reused while the worker may still read it.
using StartSlot = std::atomic<std::uint32_t>;
inline constexpr std::uint32_t kSlotFree = 0;
inline constexpr std::uint32_t kSlotPending = 1;
inline constexpr std::uint32_t kSlotStarted = 2;
inline constexpr std::uint32_t kSlotCancelled = 3;
inline constexpr std::uint32_t kSlotRevoked = 4;
inline constexpr std::size_t kSlotsPerWorker = 64;

/// A future's state for a job that runs on a remote engine (a worker
/// process, or a worker host of the redis engine); it carries the task's
/// context so callbacks run in it on the submitting host. The start-slot
/// hooks serve the process engine, whose workers share slots with it; an
/// engine without slots never attaches one, and cancel() is then the plain
/// pending -> cancelled transition.
template <typename R>
class RemoteTaskState final : public ResultState<R> {
 public:
  explicit RemoteTaskState(TaskContext ctx) : ctx_(std::move(ctx)) {}

  TaskContext* task_context() noexcept override { return &ctx_; }

  /// Completes a running state with the job's JSON result, which it may
  /// move from (a string result is moved out, not copied).
  static void complete(StateBase& state, nlohmann::json& result) {
    auto& self = static_cast<RemoteTaskState&>(state);
    if (!self.try_claim()) return;
    if constexpr (std::is_void_v<R>) {
      self.finish_with_value();
    } else {
      try {
        if constexpr (std::is_same_v<R, std::string>) {
          if (result.is_string()) {
            self.finish_with_value(std::move(result.get_ref<std::string&>()));
            return;
          }
        }
        R value = result.get<R>();
        self.finish_with_value(std::move(value));
      } catch (...) {
        self.finish_with_error(std::current_exception());
      }
    }
  }

  /// Gives the job a start slot before it is sent; false if it was
  /// cancelled meanwhile (then it must not be sent).
  static bool attach_slot(StateBase& state, StartSlot* slot) noexcept {
    auto& self = static_cast<RemoteTaskState&>(state);
    const SpinLockGuard lock(self.slot_lock_);
    if (self.state() != FutureState::pending) return false;
    slot->store(kSlotPending, std::memory_order_release);
    self.slot_ = slot;
    return true;
  }

  /// The job left its worker's queue (started, skipped, revoked, or the
  /// worker died).
  static void detach_slot(StateBase& state) noexcept {
    auto& self = static_cast<RemoteTaskState&>(state);
    const SpinLockGuard lock(self.slot_lock_);
    self.slot_ = nullptr;
  }

  bool cancel() noexcept override {
    typename ResultState<R>::CancelStep step = ResultState<R>::CancelStep::refused;
    {
      const SpinLockGuard lock(slot_lock_);
      if (slot_ != nullptr) {
        // Revoked: the dispatcher took it back (and is detaching the slot);
        // it waits in the pool's queue again, where it is cancelled below.
        std::uint32_t expected = kSlotPending;
        if (!slot_->compare_exchange_strong(expected, kSlotCancelled, std::memory_order_acq_rel) &&
            expected != kSlotCancelled && expected != kSlotRevoked) {
          return false;  // the worker has started it
        }
      }
      step = this->cancel_state();
    }
    if (step == ResultState<R>::CancelStep::transitioned) this->finish_cancel();
    return step != ResultState<R>::CancelStep::refused;
  }

 private:
  TaskContext ctx_;
  SpinLock slot_lock_;
  StartSlot* slot_ WEBEXEC_GUARDED_BY(slot_lock_) = nullptr;
};

/// A remote engine's counters (see EngineStats). Remote jobs cost tens of
/// microseconds each, so plain relaxed atomic increments are cheap enough
/// here; the thread engine counts differently (src/thread/).
struct WEBEXEC_API RemoteCounters {
  std::atomic<std::uint64_t> submitted{0};
  std::atomic<std::uint64_t> succeeded{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> running{0};  ///< a gauge the engine stores
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> redeliveries{0};
  std::atomic<std::uint64_t> dead_lettered{0};

  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  /// Counts how `state` ended (nothing if it has not: a rejected job).
  void record_outcome(const StateBase& state) noexcept;
  [[nodiscard]] EngineStats snapshot() const noexcept;
};

/// One registered job on its way to a remote engine.
struct WEBEXEC_API RemoteJob {
  RemoteJob() = default;
  RemoteJob(const RemoteJob&) = delete;
  RemoteJob& operator=(const RemoteJob&) = delete;
  /// Counts the job's outcome in `counters` (if set), releases the state.
  ~RemoteJob();

  /// Makes `state` (holding one reference for this job) the job's future
  /// state, with its completion hooks.
  template <typename R>
  void bind(RemoteTaskState<R>* typed) noexcept {
    state = typed;
    complete = &RemoteTaskState<R>::complete;
    attach_slot = &RemoteTaskState<R>::attach_slot;
    detach_slot = &RemoteTaskState<R>::detach_slot;
  }

  std::string name;        ///< the registered job
  nlohmann::json request;  ///< {"job", "args", "ctx", "label", "progress"}
  /// `request` encoded by the engine: the job frame's body, shared with a
  /// worker's out-buffer while it is being sent (a retry elsewhere resends it).
  std::shared_ptr<const std::string> body;
  int losses = 0;              ///< workers that died holding it before it started
  StateBase* state = nullptr;  ///< the future's state; this holds one reference
  void (*complete)(StateBase& state, nlohmann::json& result) = nullptr;
  bool (*attach_slot)(StateBase& state, StartSlot* slot) noexcept = nullptr;
  void (*detach_slot)(StateBase& state) noexcept = nullptr;
  std::shared_ptr<ProgressSlot> progress;  ///< host-side slot of a stored future
  std::optional<std::chrono::steady_clock::duration> timeout;
  std::uint64_t id = 0;  ///< set by the process pool each time it is sent
  /// The engine's counters, set by the engine that accepts the job; they
  /// outlive every job the engine holds.
  RemoteCounters* counters = nullptr;
};

/// The registered-job path, written once for every remote engine: the job
/// `name`, its `arguments` (job_arguments()), the context as JSON
/// (`app_json`, if given, is app_to_json of the context's app, computed
/// beforehand), `label`, `progress` and `timeout`. The state is bound
/// afterwards (RemoteJob::bind), once nothing else can fail.
/// Throws: what JSON conversion or allocation throws.
WEBEXEC_API std::unique_ptr<RemoteJob> make_remote_job(
    const std::string& name, nlohmann::json arguments, const TaskContext& ctx,
    const nlohmann::json* app_json, const std::string& label,
    std::shared_ptr<ProgressSlot> progress,
    std::optional<std::chrono::steady_clock::duration> timeout);

}  // namespace webexec::detail
