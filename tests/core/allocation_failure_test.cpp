// Submits whose allocations fail (issue 9, item 7): nothing may leak. The failing
// operator new and the N = 0, 1, 2, ... driver are in support/failing_allocation.hpp.
#include <atomic>
#include <string>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"

#include "support/core_fixtures.hpp"
#include "support/failing_allocation.hpp"

namespace {

using webexec_test::alloc::Counted;
using webexec_test::alloc::fail_each_allocation;
using webexec_test::core::TestRequest;

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
