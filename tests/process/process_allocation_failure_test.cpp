// Process-executor submits whose allocations fail (issue 9, item 7, "the same pattern
// in the process path"), run on the test's main thread: every allocation a submit makes
// on the caller's thread fails once (support/failing_allocation.hpp), from the
// allocation of the task state on: the pattern of item 7, a failure after the task
// state was built. (Failures while the JSON payload is built are not tried: nlohmann's
// destructor allocates, so one there is std::terminate, whatever the caller does.)
// Each failed submit must throw bad_alloc and leave nothing behind: the task state is
// freed, no job runs for it, no stored key remains, the pool keeps working, and
// AddressSanitizer's leak checker (asan-ubsan preset) agrees.
//
// The jobs are registered at namespace scope, before main() starts the fork server.
#include <array>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"
#include "support/core_fixtures.hpp"
#include "support/failing_allocation.hpp"

namespace {

using webexec_test::kResultPatience;
using webexec_test::alloc::Counted;
using webexec_test::alloc::fail_each_allocation;
using webexec_test::core::contains;
using webexec_test::core::TestRequest;
using webexec_test::core::what_of;

/// The job's result type gives its task state an unusual size, the trigger from which
/// allocations fail (see fail_each_allocation): a block of that size allocated earlier
/// in the submit would start the failures inside the JSON building (the test would
/// then abort), and one never allocated would let every submit through (the tests
/// check that some failed).
using Result = std::array<int, 37>;
constexpr std::size_t kStateSize = sizeof(webexec::detail::RemoteTaskState<Result>);

Result fill(int value) {
  Result out{};
  out.fill(value);
  return out;
}
WEBEXEC_REGISTER_JOB("alloc.fill", fill);

/// process_pool.cpp's submit reports a failed allocation while it encodes the job as a
/// failed future ("cannot be encoded for a worker process: std::bad_alloc") instead of
/// throwing it. That is turned back into the bad_alloc here, after dropping the future,
/// so the harness checks that the task state was freed and tries the next allocation.
/// A stored job's failed future was stored under `key`: it is popped first.
///
/// The tests stop after the first such encoding failure (`encoding_failed`): the next
/// allocations fail inside the same catch, and the one after those is in ProcessPool::
/// submit dropping the encoded request JSON, where nlohmann's destructor allocates, so a
/// failure there is std::terminate (reported; not tried).
thread_local bool encoding_failed = false;

webexec::Future<Result> rethrow_encoding_bad_alloc(webexec::Future<Result> future,
                                                   webexec::Executor* stored_in = nullptr,
                                                   const std::string& key = {}) {
  if (future.done() && future.exception() != nullptr &&
      contains(what_of(future.exception()), "bad_alloc")) {
    encoding_failed = true;
    future = {};
    if (stored_in != nullptr) static_cast<void>(stored_in->futures().pop(key));
    throw std::bad_alloc();
  }
  return future;
}

bool stop_at_encoding() { return encoding_failed; }

/// An App whose executor runs jobs in one worker process, already started (so the
/// allocations that fail are the submit's, not the first worker's spawn).
class ProcessAllocationFailureTest : public testing::Test {
 protected:
  ProcessAllocationFailureTest() {
    app_.config().set("EXECUTOR_TYPE", "process");
    app_.config().set("EXECUTOR_MAX_WORKERS", 1);
    executor_.init_app(app_);
    EXPECT_EQ(executor_.submit(fill, 1).result(kResultPatience), fill(1));
  }

  webexec::App app_{"alloc"};
  webexec::Executor executor_;
};

/// Counts default done callbacks; a test waits (bounded) for a count.
class CallbackCount {
 public:
  void add() {
    {
      const std::lock_guard lock(mutex_);
      ++count_;
    }
    changed_.notify_all();
  }
  /// Waits until at least `n` callbacks ran (or the patience ends), returns the count.
  int wait_for(int n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kResultPatience, [&] { return count_ >= n; });
    return count_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
};

TEST_F(ProcessAllocationFailureTest, FailedSubmitLeaksNothing) {
  encoding_failed = false;
  CallbackCount callbacks;
  executor_.add_default_done_callback([&](const webexec::AnyFuture&) { callbacks.add(); });
  TestRequest request(&app_, "/alloc");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  const int failures = fail_each_allocation(
      [&](const Counted& /*capture*/) {
        return rethrow_encoding_bad_alloc(executor_.submit(fill, 7));
      },
      kStateSize, fill(7), stop_at_encoding);
  EXPECT_GE(failures, 1);
  EXPECT_TRUE(encoding_failed) << "no allocation after the task state failed";
  // The pool still works, and no failed submit left a job behind: the only default
  // callbacks are those of the failed futures popped above (each completed at once)
  // and of this job.
  EXPECT_EQ(executor_.submit(fill, 8).result(kResultPatience), fill(8));
  EXPECT_EQ(callbacks.wait_for(failures + 1), failures + 1);
}

TEST_F(ProcessAllocationFailureTest, FailedSubmitStoredLeaksNothing) {
  encoding_failed = false;
  int attempt = 0;
  const int failures = fail_each_allocation(
      [&](const Counted& /*capture*/) {
        // A fresh key per attempt: a stored future of a failed attempt would clash.
        const std::string key = "job-" + std::to_string(attempt++);
        return rethrow_encoding_bad_alloc(executor_.submit_stored(key, fill, 7), &executor_, key);
      },
      kStateSize, fill(7), stop_at_encoding);
  EXPECT_GE(failures, 1);
  EXPECT_TRUE(encoding_failed) << "no allocation after the task state failed";
  EXPECT_EQ(executor_.futures().size(), 0U) << "a failed attempt stored its key";
  EXPECT_EQ(executor_.submit_stored("after", fill, 8).result(kResultPatience), fill(8));
  EXPECT_EQ(executor_.futures().size(), 1U);
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
