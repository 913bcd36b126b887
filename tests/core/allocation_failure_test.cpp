// Submits whose allocations fail (issue 9, item 7): nothing may leak.
//
// This binary replaces the global operator new. A test arms it on its own
// thread to throw std::bad_alloc at the Nth allocation, then submits, for
// N = 0, 1, 2, ... until a submit gets through: every allocation a submit
// makes fails once. Each failed submit must throw bad_alloc to the caller
// and destroy every copy of the task's captures (a counted object says so);
// AddressSanitizer's leak checker confirms that no task state is left behind.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"

#include "support/core_fixtures.hpp"

namespace {

/// Allocations this thread may still make before operator new throws;
/// negative: unlimited. Only the armed thread fails, never a worker.
thread_local long allocations_left = -1;

void* allocate(std::size_t size, std::size_t alignment) {
  if (allocations_left >= 0 && allocations_left-- == 0) throw std::bad_alloc();
  if (size == 0) size = 1;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

// The replaceable allocation functions: every form a new-expression uses here.
void* operator new(std::size_t size) { return allocate(size, alignof(std::max_align_t)); }
void* operator new[](std::size_t size) { return allocate(size, alignof(std::max_align_t)); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t /*size*/) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t /*alignment*/) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t /*alignment*/) noexcept { std::free(p); }
void operator delete(void* p, std::size_t /*size*/, std::align_val_t /*alignment*/) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t /*size*/, std::align_val_t /*alignment*/) noexcept {
  std::free(p);
}

namespace {

using webexec_test::core::TestRequest;

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

/// Lets the next `n` allocations of this thread succeed and fails the one after.
class FailingAllocation {
 public:
  explicit FailingAllocation(long n) noexcept { allocations_left = n; }
  FailingAllocation(const FailingAllocation&) = delete;
  FailingAllocation& operator=(const FailingAllocation&) = delete;
  ~FailingAllocation() { allocations_left = -1; }
};

/// Calls `submit()` with the Nth allocation failing, for N = 0, 1, ... until
/// it succeeds. Each failure must be a bad_alloc that leaves no capture
/// alive. Returns how many submits failed; the last future's result must be 7.
template <typename Submit>
int fail_each_allocation(Submit submit) {
  constexpr long kMaxAllocations = 200;  // a submit makes far fewer
  int failures = 0;
  for (long n = 0; n < kMaxAllocations; ++n) {
    EXPECT_EQ(Counted::live.load(), 0) << "before allocation " << n;
    bool failed = false;
    webexec::Future<int> future;
    {
      const Counted capture;
      const FailingAllocation fail(n);
      try {
        future = submit(capture);
      } catch (const std::bad_alloc&) {
        failed = true;
      }
    }
    if (failed) {
      ++failures;
      EXPECT_EQ(Counted::live.load(), 0) << "allocation " << n << " failed: a capture leaked";
      continue;
    }
    EXPECT_EQ(future.result(), 7);
    future = {};
    EXPECT_EQ(Counted::live.load(), 0) << "after the submit that succeeded";
    return failures;
  }
  ADD_FAILURE() << "no submit succeeded within " << kMaxAllocations << " allocations";
  return failures;
}

TEST(AllocationFailureTest, FailedSubmitWithDefaultCallbacksLeaksNothing) {
  webexec::App app("alloc");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  std::atomic<int> callbacks{0};
  executor.add_default_done_callback([&](const webexec::AnyFuture&) { callbacks.fetch_add(1); });
  executor.add_default_done_callback([&](const webexec::AnyFuture&) { callbacks.fetch_add(1); });
  EXPECT_EQ(executor.submit([] { return 0; }).result(), 0);  // the worker exists

  TestRequest request(&app, "/alloc");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  const int failures = fail_each_allocation([&](const Counted& capture) {
    return executor.submit([capture](const Counted& /*arg*/) { return 7; }, capture);
  });
  EXPECT_GE(failures, 2) << "the default-callback nodes allocate: their failures must be seen";
}

TEST(AllocationFailureTest, FailedSubmitStoredLeaksNothing) {
  webexec::App app("alloc");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  executor.add_default_done_callback([](const webexec::AnyFuture&) {});
  EXPECT_EQ(executor.submit([] { return 0; }).result(), 0);  // the worker exists
  int attempt = 0;
  const int failures = fail_each_allocation([&](const Counted& capture) {
    // A fresh key per attempt: a stored future of a failed attempt would clash.
    return executor.submit_stored("job-" + std::to_string(attempt++), [capture] { return 7; });
  });
  EXPECT_GE(failures, 3);
  // A failed attempt never stored its key.
  EXPECT_EQ(executor.futures().size(), 1U);
}

}  // namespace
