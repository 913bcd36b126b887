/// An annotated mutex and its locks (not API): what clang's
/// `-Wthread-safety` needs to check `WEBEXEC_GUARDED_BY` members.
///
/// `Mutex` is a `std::mutex` (same size, same cost: every call is inline)
/// that clang knows is a capability. `MutexLock` is its `std::lock_guard`;
/// `UniqueLock` is its `std::unique_lock`, for condition variables and for
/// code that unlocks and relocks. Any thread may use them.
///
/// Example:
///
///     Mutex mutex_;
///     int count_ WEBEXEC_GUARDED_BY(mutex_) = 0;
///     void add() { const MutexLock lock(mutex_); ++count_; }
#pragma once

#include <condition_variable>
#include <mutex>

#include "webexec/detail/thread_annotations.hpp"

namespace webexec::detail {

class WEBEXEC_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() WEBEXEC_ACQUIRE() { mutex_.lock(); }
  void unlock() WEBEXEC_RELEASE() { mutex_.unlock(); }
  [[nodiscard]] bool try_lock() WEBEXEC_TRY_ACQUIRE(true) { return mutex_.try_lock(); }

  /// The underlying mutex, for `std::unique_lock` inside `UniqueLock`.
  std::mutex& native() noexcept { return mutex_; }

 private:
  std::mutex mutex_;
};

/// Holds `mutex` for its lifetime (`std::lock_guard`).
class WEBEXEC_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) WEBEXEC_ACQUIRE(mutex) : mutex_(mutex) { mutex.lock(); }
  ~MutexLock() WEBEXEC_RELEASE() { mutex_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mutex_;
};

/// Holds `mutex` until destroyed or `unlock()`ed (`std::unique_lock`); waits
/// on a `std::condition_variable` through `native()`.
class WEBEXEC_SCOPED_CAPABILITY UniqueLock {
 public:
  explicit UniqueLock(Mutex& mutex) WEBEXEC_ACQUIRE(mutex) : lock_(mutex.native()) {}
  ~UniqueLock() WEBEXEC_RELEASE() = default;
  UniqueLock(const UniqueLock&) = delete;
  UniqueLock& operator=(const UniqueLock&) = delete;

  void lock() WEBEXEC_ACQUIRE() { lock_.lock(); }
  void unlock() WEBEXEC_RELEASE() { lock_.unlock(); }

  /// For `condition_variable::wait(native(), ...)`: the wait releases and
  /// retakes the mutex, so the analysis sees it held throughout.
  std::unique_lock<std::mutex>& native() noexcept { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace webexec::detail
