// Executor shutdown: is_shutdown(), and an Executor destroyed by one of its
// own tasks or done callbacks (which used to reach std::terminate).
#include <atomic>
#include <chrono>
#include <future>
#include <latch>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::core::Gate;

/// Upper bound for waits that should end almost at once.
constexpr auto kPatience = 10s;

TEST(ExecutorShutdownTest, IsShutdownFollowsShutdown) {
  webexec::App app("is_shutdown");
  webexec::Executor executor(app);
  EXPECT_FALSE(executor.is_shutdown());
  EXPECT_EQ(executor.submit([] { return 2; }).result(), 2);
  executor.shutdown(true);
  EXPECT_TRUE(executor.is_shutdown());
  EXPECT_THROW(static_cast<void>(executor.submit([] { return 2; })), webexec::ShutdownError);
}

TEST(ExecutorShutdownTest, IsShutdownBeforeInitAppThrows) {
  const webexec::Executor executor("later");
  EXPECT_THROW(static_cast<void>(executor.is_shutdown()), webexec::InvalidStateError);
}

TEST(ExecutorShutdownTest, DestroyedFromItsOwnTaskDoesNotAbort) {
  // Static: the destroying worker still runs the app's teardown hooks after its task
  // or callback returns, and nothing says when it is done (docs/design.md, "Shutdown").
  static webexec::App app("self_task");
  app.config().set("EXECUTOR_MAX_WORKERS", 2);
  auto* executor = new webexec::Executor(app);  // NOLINT(cppcoreguidelines-owning-memory)

  // One task holds worker 1, the destroying one runs on worker 2, and a
  // third waits in the queue.
  Gate other_gate;
  std::latch other_started(1);
  std::atomic<bool> other_done{false};
  auto other = executor->submit([&other_started, &other_done, w = other_gate.waiter()] {
    other_started.count_down();
    w.wait();
    other_done.store(true);
  });
  other_started.wait();
  Gate destroy_gate;
  std::latch destroyer_started(1);
  auto destroyer =
      executor->submit([executor, &destroyer_started, &other_done, w = destroy_gate.waiter()] {
        destroyer_started.count_down();
        w.wait();
        delete executor;  // NOLINT(cppcoreguidelines-owning-memory)
        // Every other task of the executor has finished by now.
        return other_done.load();
      });
  destroyer_started.wait();
  auto queued = executor->submit([] { return 3; });
  destroy_gate.open();

  // The queued task is cancelled; the destructor then waits for `other`.
  ASSERT_TRUE(queued.wait(kPatience));
  EXPECT_TRUE(queued.cancelled());
  EXPECT_FALSE(destroyer.done());
  other_gate.open();
  EXPECT_TRUE(destroyer.result(kPatience)) << "the destructor returned while a task still ran";
  EXPECT_TRUE(other.done());
  EXPECT_FALSE(app.extension<webexec::Executor>("executor"));
}

TEST(ExecutorShutdownTest, DestroyedFromItsOwnDoneCallbackDoesNotAbort) {
  // Static: the destroying worker still runs the app's teardown hooks after its task
  // or callback returns, and nothing says when it is done (docs/design.md, "Shutdown").
  static webexec::App app("self_callback");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  auto* executor = new webexec::Executor(app);  // NOLINT(cppcoreguidelines-owning-memory)
  Gate gate;
  std::latch started(1);
  auto f = executor->submit([&started, w = gate.waiter()] {
    started.count_down();
    w.wait();
    return 4;
  });
  started.wait();
  std::promise<void> destroyed;
  // Added while the task runs: the worker runs it after the task.
  f.add_done_callback([executor, &destroyed](const webexec::Future<int>&) {
    delete executor;  // NOLINT(cppcoreguidelines-owning-memory)
    destroyed.set_value();
  });
  gate.open();
  EXPECT_EQ(f.result(kPatience), 4);
  EXPECT_EQ(destroyed.get_future().wait_for(kPatience), std::future_status::ready);
}

TEST(ExecutorShutdownTest, DestroyedFromADefaultDoneCallbackDoesNotAbort) {
  // Static: the destroying worker still runs the app's teardown hooks after its task
  // or callback returns, and nothing says when it is done (docs/design.md, "Shutdown").
  static webexec::App app("self_default");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  auto* executor = new webexec::Executor(app);  // NOLINT(cppcoreguidelines-owning-memory)
  std::promise<void> destroyed;
  executor->add_default_done_callback([executor, &destroyed](const webexec::AnyFuture&) {
    delete executor;  // NOLINT(cppcoreguidelines-owning-memory)
    destroyed.set_value();
  });
  Gate gate;
  auto f = executor->submit([w = gate.waiter()] {
    w.wait();
    return 6;
  });
  gate.open();
  EXPECT_EQ(f.result(kPatience), 6);
  EXPECT_EQ(destroyed.get_future().wait_for(kPatience), std::future_status::ready);
}

}  // namespace
