/// The host side of EXECUTOR_TYPE=process (not API; use `Executor`).
///
/// A dispatcher thread owns the worker processes: it sends each queued job
/// to an idle worker (starting workers through the fork server, up to
/// `max_workers`), reads results and progress, enforces time limits, and
/// replaces a worker that dies, misbehaves or has run `max_tasks_per_child`
/// jobs. Futures complete on the dispatcher thread. The dispatcher never
/// blocks on a socket (non-blocking descriptors, buffered partial writes),
/// and nothing it does can end the process: an exception there fails a
/// future or is reported through `report_error`. src/process/wire.hpp has
/// the frame format.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "webexec/context.hpp"
#include "webexec/detail/export.hpp"
#include "webexec/detail/future_state.hpp"
#include "webexec/detail/spin.hpp"

namespace webexec::detail {

/// Start slots shared with a worker process (one page of memory both map):
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

/// How many jobs any process pool of this process has taken back from a
/// worker's queue so far, to run them elsewhere (for tests and
/// diagnostics). Thread-safe.
WEBEXEC_API std::uint64_t process_jobs_revoked() noexcept;

/// In a worker process: the id of the job it is running (0 outside a job;
/// for tests that forge frames). Not thread-safe against the worker loop.
WEBEXEC_API std::uint64_t current_worker_job_id() noexcept;

/// A future's state for a job that runs in a worker process; it carries
/// the task's context so callbacks run in it on the host.
template <typename R>
class ProcessTaskState final : public ResultState<R> {
 public:
  explicit ProcessTaskState(TaskContext ctx) : ctx_(std::move(ctx)) {}

  TaskContext* task_context() noexcept override { return &ctx_; }

  /// Completes a running state with the job's JSON result, which it may
  /// move from (a string result is moved out, not copied).
  static void complete(StateBase& state, nlohmann::json& result) {
    auto& self = static_cast<ProcessTaskState&>(state);
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
    auto& self = static_cast<ProcessTaskState&>(state);
    const SpinLockGuard lock(self.slot_lock_);
    if (self.state() != FutureState::pending) return false;
    slot->store(kSlotPending, std::memory_order_release);
    self.slot_ = slot;
    return true;
  }

  /// The job left its worker's queue (started, skipped, revoked, or the
  /// worker died).
  static void detach_slot(StateBase& state) noexcept {
    auto& self = static_cast<ProcessTaskState&>(state);
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

/// One job on its way to a worker process.
struct ProcessJob {
  ProcessJob() = default;
  ProcessJob(const ProcessJob&) = delete;
  ProcessJob& operator=(const ProcessJob&) = delete;
  ~ProcessJob() {
    if (state != nullptr) state->release();
  }

  std::string name;        ///< the registered job
  nlohmann::json request;  ///< {"job", "args", "ctx", "label", "progress"}
  /// `request` encoded by submit(): the job frame's body, shared with the
  /// worker's out-buffer while it is being sent (a retry elsewhere resends it).
  std::shared_ptr<const std::string> body;
  int losses = 0;              ///< workers that died holding it before it started
  StateBase* state = nullptr;  ///< the future's state; this holds one reference
  void (*complete)(StateBase& state, nlohmann::json& result) = nullptr;
  bool (*attach_slot)(StateBase& state, StartSlot* slot) noexcept = nullptr;
  void (*detach_slot)(StateBase& state) noexcept = nullptr;
  std::shared_ptr<ProgressSlot> progress;  ///< host-side slot of a stored future
  std::optional<std::chrono::steady_clock::duration> timeout;
  std::uint64_t id = 0;  ///< set by the pool each time it is sent
};

struct ProcessPoolOptions {
  int max_workers = 1;
  int max_tasks_per_child = 0;  ///< 0: workers are never recycled
  std::string name;             ///< for messages
  /// EXECUTOR_MAX_PAYLOAD: the largest encoded job (arguments and context)
  /// and result, in bytes (at most 1 GiB).
  std::uint32_t max_payload = 64U << 20U;
};

class WEBEXEC_API ProcessPool {
 public:
  explicit ProcessPool(ProcessPoolOptions options);
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;
  /// shutdown(wait=true).
  ~ProcessPool();

  /// Encodes `job->request` (CBOR, in the calling thread) and queues the
  /// job. A job that cannot be encoded or is over `max_payload` is not
  /// queued: its future fails at once (PayloadTooLargeError naming both
  /// sizes, or the encoder's error), and its callbacks run in this thread.
  /// Thread-safe. Throws: `ShutdownError` after shutdown().
  void submit(std::unique_ptr<ProcessJob> job);

  void shutdown(bool wait, bool cancel_futures);

  [[nodiscard]] int max_workers() const noexcept;

  /// True once shutdown() has been called.
  [[nodiscard]] bool is_shutdown() const;

  /// The pids of the live worker processes (for tests and diagnostics).
  [[nodiscard]] std::vector<pid_t> worker_pids() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace webexec::detail
