/// Spinning primitives for very short critical sections (not API); any
/// thread may use them.
///
/// `SpinLock` is a capability for clang's `-Wthread-safety` (see
/// detail/thread_annotations.hpp), so members it guards carry
/// `WEBEXEC_GUARDED_BY(lock_)`; `SpinLockGuard` holds it for a scope.
///
/// Example:
///
///     SpinLock lock_;
///     Node* head_ WEBEXEC_GUARDED_BY(lock_) = nullptr;
///     void push(Node* n) { const SpinLockGuard guard(lock_); n->next = head_; head_ = n; }
#pragma once

#include <atomic>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "webexec/detail/thread_annotations.hpp"

namespace webexec::detail {

/// Tells the CPU this is a spin-wait loop (x86 `pause`, ARM `yield`).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// A test-and-test-and-set lock for critical sections of a few instructions.
///
/// It never parks: after a short burst of `pause` it yields the CPU, which on
/// a 2-core machine lets a preempted holder finish. Use only where the holder
/// cannot block or run user code.
class WEBEXEC_CAPABILITY("mutex") SpinLock {
 public:
  void lock() noexcept WEBEXEC_ACQUIRE() {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }

  bool try_lock() noexcept WEBEXEC_TRY_ACQUIRE(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept WEBEXEC_RELEASE() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

/// Holds a `SpinLock` for its lifetime (`std::lock_guard`, but annotated).
class WEBEXEC_SCOPED_CAPABILITY SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& lock) noexcept WEBEXEC_ACQUIRE(lock) : lock_(lock) {
    lock.lock();
  }
  ~SpinLockGuard() WEBEXEC_RELEASE() { lock_.unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace webexec::detail
