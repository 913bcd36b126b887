// A global operator new that fails on demand, for the failing-allocation tests (issue 9,
// item 7): test code, run on the test's own thread (the one it arms).
//
// This header *defines* the replaceable allocation functions (they may not be inline),
// so include it in exactly one source file of a test executable. A test arms it on its
// own thread to throw std::bad_alloc at the Nth allocation, then submits, for
// N = 0, 1, 2, ... until a submit gets through (fail_each_allocation): every allocation
// a submit makes fails once. Only the armed thread fails, never a worker or the fork
// server. Each failed submit must throw bad_alloc to the caller and destroy every copy
// of the task's captures (a Counted object says so); AddressSanitizer's leak checker
// confirms that no task state is left behind.
//
// Example:
//
//   #include "support/failing_allocation.hpp"
//
//   using webexec_test::alloc::fail_each_allocation;
//   const int failures = fail_each_allocation([&](const Counted& capture) {
//     return executor.submit([capture] { return 7; });
//   });
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <new>
#include <utility>

#include <gtest/gtest.h>

#include "webexec/future.hpp"

namespace webexec_test::alloc {

/// Allocations this thread may still make before operator new throws;
/// negative: unlimited. Only the armed thread fails, never a worker.
inline thread_local long allocations_left = -1;

/// Non-zero: allocations_left starts counting only after this thread has allocated a
/// block of exactly this size (the trigger, e.g. a task state); that block is watched.
inline thread_local std::size_t trigger_size = 0;

/// The trigger block while it is allocated (operator delete, on any thread, clears it).
inline std::atomic<void*> watched_block{nullptr};

inline void* allocate(std::size_t size, std::size_t alignment) {
  const bool trigger = trigger_size != 0 && size == trigger_size;
  if (trigger_size == 0 && allocations_left >= 0 && allocations_left-- == 0) {
    throw std::bad_alloc();
  }
  if (size == 0) size = 1;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  if (trigger) {
    trigger_size = 0;
    watched_block.store(p);
  }
  return p;
}

inline void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  void* expected = p;
  watched_block.compare_exchange_strong(expected, nullptr);
  std::free(p);
}

}  // namespace webexec_test::alloc

// The replaceable allocation functions: every form a new-expression uses here.
void* operator new(std::size_t size) {
  return webexec_test::alloc::allocate(size, alignof(std::max_align_t));
}
void* operator new[](std::size_t size) {
  return webexec_test::alloc::allocate(size, alignof(std::max_align_t));
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return webexec_test::alloc::allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return webexec_test::alloc::allocate(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept { webexec_test::alloc::deallocate(p); }
void operator delete[](void* p) noexcept { webexec_test::alloc::deallocate(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { webexec_test::alloc::deallocate(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept {
  webexec_test::alloc::deallocate(p);
}
void operator delete(void* p, std::align_val_t /*alignment*/) noexcept {
  webexec_test::alloc::deallocate(p);
}
void operator delete[](void* p, std::align_val_t /*alignment*/) noexcept {
  webexec_test::alloc::deallocate(p);
}
void operator delete(void* p, std::size_t /*size*/, std::align_val_t /*alignment*/) noexcept {
  webexec_test::alloc::deallocate(p);
}
void operator delete[](void* p, std::size_t /*size*/, std::align_val_t /*alignment*/) noexcept {
  webexec_test::alloc::deallocate(p);
}

namespace webexec_test::alloc {

/// Counts its live copies, so a test can see that a task's captures died.
class Counted {
 public:
  Counted() noexcept { live.fetch_add(1); }
  Counted(const Counted& /*other*/) noexcept { live.fetch_add(1); }
  Counted(Counted&& /*other*/) noexcept { live.fetch_add(1); }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) = default;
  ~Counted() { live.fetch_sub(1); }

  static inline std::atomic<int> live{0};
};

/// Lets the next `n` allocations of this thread succeed and fails the one after;
/// with a `trigger` size, counts only from the allocation of that size on.
class FailingAllocation {
 public:
  explicit FailingAllocation(long n, std::size_t trigger = 0) noexcept {
    watched_block.store(nullptr);
    trigger_size = trigger;
    allocations_left = n;
  }
  FailingAllocation(const FailingAllocation&) = delete;
  FailingAllocation& operator=(const FailingAllocation&) = delete;
  ~FailingAllocation() {
    allocations_left = -1;
    trigger_size = 0;
  }
};

/// Calls `submit()` with the Nth allocation failing, for N = 0, 1, ... until
/// it succeeds. Each failure must be a bad_alloc that leaves no capture
/// alive. Returns how many submits failed; the last future's result must be `expected` (within
/// 60 s, so a lost job fails the test instead of hanging it).
///
/// With a `trigger` size, only the allocations after the first block of that size fail
/// (for the process path, whose JSON building may not fail: nlohmann's destructor
/// allocates, so a failure inside it is std::terminate). The trigger block must then
/// be freed by the time a failed submit returns: that is the task state, not leaked.
///
/// `stop`, if given, is asked after each failed submit: true ends the loop there (no
/// further allocation is failed; the caller checks the pool still works).
template <typename Submit, typename Expected = int>
int fail_each_allocation(Submit submit, std::size_t trigger = 0, const Expected& expected = 7,
                         const std::function<bool()>& stop = {}) {
  constexpr long kMaxAllocations = 200;  // a submit makes far fewer
  int failures = 0;
  for (long n = 0; n < kMaxAllocations; ++n) {
    EXPECT_EQ(Counted::live.load(), 0) << "before allocation " << n;
    bool failed = false;
    decltype(submit(std::declval<const Counted&>())) future;
    {
      const Counted capture;
      const FailingAllocation fail(n, trigger);
      try {
        future = submit(capture);
      } catch (const std::bad_alloc&) {
        failed = true;
      }
    }
    if (failed) {
      ++failures;
      EXPECT_EQ(Counted::live.load(), 0) << "allocation " << n << " failed: a capture leaked";
      EXPECT_EQ(watched_block.load(), nullptr)
          << "allocation " << n << " after the trigger failed: its block leaked";
      if (stop && stop()) return failures;
      continue;
    }
    EXPECT_EQ(future.result(std::chrono::seconds(60)), expected);
    future = {};
    EXPECT_EQ(Counted::live.load(), 0) << "after the submit that succeeded";
    return failures;
  }
  ADD_FAILURE() << "no submit succeeded within " << kMaxAllocations << " allocations";
  return failures;
}

}  // namespace webexec_test::alloc
