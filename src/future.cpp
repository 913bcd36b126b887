#include "webexec/future.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <string>

#include <linux/futex.h>

#include "webexec/detail/demangle.hpp"
#include "webexec/detail/mutex.hpp"
#include "webexec/detail/spin.hpp"
#include "webexec/errors.hpp"

namespace webexec {

const char* to_string(FutureState state) noexcept {
  switch (state) {
    case FutureState::pending:
      return "PENDING";
    case FutureState::running:
      return "RUNNING";
    case FutureState::cancelled:
      return "CANCELLED";
    case FutureState::finished:
      return "FINISHED";
  }
  return "UNKNOWN";
}

namespace {

void default_error_handler(const char* where, const std::exception_ptr& error) {
  std::fprintf(stderr, "webexec: exception in %s: %s\n", where, detail::what(error).c_str());
}

/// The process-wide handler set by set_error_handler(), and its lock.
struct HandlerSlot {
  detail::Mutex mutex;
  ErrorHandler handler WEBEXEC_GUARDED_BY(mutex);
};

HandlerSlot& handler_slot() {
  static HandlerSlot slot;
  return slot;
}

// Linux futex on the state word. FUTEX_WAIT_BITSET takes an absolute
// CLOCK_MONOTONIC deadline, which is what std::chrono::steady_clock reads.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                const std::optional<detail::Clock::time_point>& deadline) {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  // Spurious returns (EINTR, EAGAIN, ETIMEDOUT) are fine: the caller re-checks.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word),  // NOLINT
          FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word),  // NOLINT
          FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
}

// How long result() spins before sleeping in the kernel. A task that takes
// a few microseconds then costs no futex round trip (~3 us on 2 cores).
constexpr auto kWaitSpin = std::chrono::microseconds(20);

}  // namespace

ErrorHandler set_error_handler(ErrorHandler handler) {
  HandlerSlot& slot = handler_slot();
  const detail::MutexLock lock(slot.mutex);
  return std::exchange(slot.handler, std::move(handler));
}

namespace detail {

void report_error(const char* where, std::exception_ptr error) noexcept {
  try {
    ErrorHandler handler;
    {
      HandlerSlot& slot = handler_slot();
      const MutexLock lock(slot.mutex);
      handler = slot.handler;
    }
    if (handler) {
      handler(where, error);
    } else {
      default_error_handler(where, error);
    }
  } catch (...) {  // NOLINT(bugprone-empty-catch): the handler must never take the process down
  }
}

ThreadRole& thread_role() noexcept {
  thread_local ThreadRole role;
  return role;
}

void throw_no_state() {
  throw InvalidStateError("future handle has no state (default-constructed or moved-from)");
}
void throw_cancelled() { throw CancelledError("future was cancelled"); }
void throw_timeout() { throw TimeoutError("timed out waiting for the future"); }
void throw_type_mismatch(const std::type_info& stored, const std::type_info& requested) {
  throw std::invalid_argument("future holds a result of type " + demangle(stored.name()) +
                              ", not " + demangle(requested.name()));
}
void throw_already_done(FutureState state) {
  throw InvalidStateError(std::string("cannot set the result of a future that is ") +
                          to_string(state) + " (already set or cancelled)");
}

StateBase::~StateBase() {
  // Callbacks still listed only if the future never completed (e.g. a
  // promise that was never set and never broken): free them unrun.
  while (head_ != nullptr) delete std::exchange(head_, head_->next_);
}

StateBase::CancelStep StateBase::cancel_state() noexcept {
  std::uint32_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    const std::uint32_t s = w & kStateMask;
    if (s == kCancelled) return CancelStep::already;
    if (s != kPending) return CancelStep::refused;
    if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kCancelled, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      return CancelStep::transitioned;
    }
  }
}

bool StateBase::cancel() noexcept {
  switch (cancel_state()) {
    case CancelStep::transitioned:
      finish_cancel();
      return true;
    case CancelStep::already:
      return true;
    case CancelStep::refused:
      break;
  }
  return false;
}

bool StateBase::set_running_or_notify_cancel() {
  std::uint32_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    const std::uint32_t s = w & kStateMask;
    if (s == kCancelled) return false;
    if (s != kPending) {
      throw InvalidStateError(std::string("set_running_or_notify_cancel() on a future that is ") +
                              to_string(state()));
    }
    if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kRunning, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      return true;
    }
  }
}

bool StateBase::try_claim() noexcept {
  std::uint32_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    const std::uint32_t s = w & kStateMask;
    if (s != kPending && s != kRunning) return false;
    if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kCompleting, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      return true;
    }
  }
}

bool StateBase::run_task() noexcept {
  if (!begin_run()) return false;
  ThreadRole& role = thread_role();
  const StateBase* outer = std::exchange(role.task, this);
  run();
  role.task = outer;
  return true;
}

bool StateBase::fail_pending(std::exception_ptr error) noexcept {
  std::uint32_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    if ((w & kStateMask) != kPending) return false;
    if (word_.compare_exchange_weak(w, (w & ~kStateMask) | kCompleting, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      break;
    }
  }
  drop_task();
  finish_with_error(std::move(error));
  return true;
}

void StateBase::complete(std::uint32_t final_state) noexcept {
  const std::uint32_t old = word_.exchange(final_state, std::memory_order_acq_rel);
  if ((old & kWaiters) != 0) futex_wake_all(&word_);
  if ((old & kHasCallbacks) == 0) return;
  CallbackNode* list = nullptr;
  {
    const SpinLockGuard lock(callbacks_lock_);
    list = std::exchange(head_, nullptr);
    tail_ = nullptr;
  }
  while (list != nullptr) {
    CallbackNode* next = list->next_;
    list->invoke(*this);
    delete list;
    list = next;
  }
}

bool StateBase::try_publish_without_callbacks() noexcept {
  std::uint32_t w = word_.load(std::memory_order_relaxed);
  while ((w & kHasCallbacks) == 0) {
    // add_callback() sets kHasCallbacks only while not done, so a success
    // here means no callback can be waiting to run.
    if (word_.compare_exchange_weak(w, kFinished, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      if ((w & kWaiters) != 0) futex_wake_all(&word_);
      return true;
    }
  }
  return false;
}

void StateBase::add_callback(CallbackNode* node) noexcept {
  {
    const SpinLockGuard lock(callbacks_lock_);
    std::uint32_t w = word_.load(std::memory_order_acquire);
    while (!is_done(w)) {
      // Setting kHasCallbacks while not done guarantees that completion,
      // whose exchange returns the bit, takes the lock and sees this node.
      if ((w & kHasCallbacks) != 0 ||
          word_.compare_exchange_weak(w, w | kHasCallbacks, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        node->next_ = nullptr;
        if (tail_ != nullptr) {
          tail_->next_ = node;
        } else {
          head_ = node;
        }
        tail_ = node;
        return;
      }
    }
  }
  node->invoke(*this);
  delete node;
}

bool StateBase::remove_callback(CallbackNode* node) noexcept {
  const SpinLockGuard lock(callbacks_lock_);
  CallbackNode* prev = nullptr;
  for (CallbackNode* n = head_; n != nullptr; prev = n, n = n->next_) {
    if (n != node) continue;
    (prev != nullptr ? prev->next_ : head_) = n->next_;
    if (tail_ == n) tail_ = prev;
    return true;
  }
  return false;
}

bool StateBase::wait_until(const std::optional<Clock::time_point>& deadline) {
  if (done()) return true;
  ThreadRole& role = thread_role();
  if (role.task == this) {
    throw InvalidStateError(
        "result() called from inside the task that computes it: it would wait for itself "
        "forever");
  }
  // A worker waiting on a still-pending task of its own pool runs it now:
  // with every worker waiting like this, nobody else ever would.
  if (owner_ != nullptr && owner_ == role.executor) {
    if (run_task()) {
      if (InlineRunCounters* counts = role.inline_runs) {
        auto& c = error_ ? counts->failed : counts->succeeded;  // this thread's own
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      }
      publish();
    }
    if (done()) return true;
  }

  // Spin only for thread-pool tasks, which may finish within microseconds;
  // a promise is set by another process or machine, far slower than a spin,
  // and the spin would take a core from the workers.
  if (owner_ != nullptr) {
    auto spin_end = Clock::now() + kWaitSpin;
    if (deadline && *deadline < spin_end) spin_end = *deadline;
    for (unsigned i = 1; !done(); ++i) {
      detail::cpu_relax();
      if ((i & 63U) == 0 && Clock::now() >= spin_end) break;
    }
  }

  std::uint32_t w = word_.load(std::memory_order_acquire);
  while (!is_done(w)) {
    if (deadline && Clock::now() >= *deadline) return false;
    if ((w & kWaiters) == 0) {
      if (!word_.compare_exchange_weak(w, w | kWaiters, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        continue;
      }
      w |= kWaiters;
    }
    futex_wait(&word_, w, deadline);
    w = word_.load(std::memory_order_acquire);
  }
  return true;
}

}  // namespace detail
}  // namespace webexec
