// Executor (Step 2): Flask-Executor's Executor for C++ web services.
// Construction and init_app, configuration (prefixed keys, the environment,
// strict parsing), the context every task and callback runs in, map, stored
// futures, jobs, default done callbacks, propagated exceptions, teardown
// hooks and shutdown. Each upstream defect fixed has a test saying so.
#include "webexec/executor.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/errors.hpp"
#include "webexec/future.hpp"
#include "webexec/thread_pool_executor.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::core::contains;
using webexec_test::core::Gate;
using webexec_test::core::message_of;
using webexec_test::core::ScopedEnv;
using webexec_test::core::ScopedErrorHandler;
using webexec_test::core::TestRequest;
using webexec_test::core::threads_named;
using webexec_test::core::what_of;

/// Upper bound for waits that should end almost at once; reaching it fails the test.
constexpr auto kPatience = 10s;

/// A thread-safe counter the test can wait on (with a bound, so a bug fails
/// instead of hanging).
class Counter {
 public:
  void add() {
    {
      const std::lock_guard lock(mutex_);
      ++count_;
    }
    changed_.notify_all();
  }
  bool wait_for(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kPatience, [&] { return count_ >= n; });
  }
  [[nodiscard]] int value() const {
    const std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
};

/// A latch with a bounded wait: n parties meet, or the wait gives up and
/// returns false.
class Rendezvous {
 public:
  explicit Rendezvous(int parties) : remaining_(parties) {}
  bool arrive_and_wait() {
    std::unique_lock lock(mutex_);
    if (--remaining_ == 0) met_.notify_all();
    return met_.wait_for(lock, kPatience, [&] { return remaining_ <= 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable met_;
  int remaining_;
};

/// Thread-safe list of strings (what callbacks and handlers saw).
class Log {
 public:
  void add(std::string line) {
    {
      const std::lock_guard lock(mutex_);
      lines_.push_back(std::move(line));
    }
    changed_.notify_all();
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kPatience, [&] { return lines_.size() >= n; });
  }
  [[nodiscard]] std::vector<std::string> lines() const {
    const std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

/// Collects the ErrorReports an App's error handler receives.
class ReportLog {
 public:
  void install(webexec::App& app) {
    app.set_error_handler([this](const webexec::ErrorReport& r) {
      {
        const std::lock_guard lock(mutex_);
        reports_.push_back(r);
      }
      changed_.notify_all();
    });
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kPatience, [&] { return reports_.size() >= n; });
  }
  [[nodiscard]] std::vector<webexec::ErrorReport> reports() const {
    const std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<webexec::ErrorReport> reports_;
};

/// What a task or callback can see of its context, as one line.
std::string describe_context() {
  std::string out = "app=";
  out += webexec::has_app_context() ? webexec::current_app().name() : "-";
  out += " path=";
  out += webexec::has_request_context() ? webexec::current_request().path : "-";
  out += " user=";
  out += webexec::has_app_context() ? webexec::g().get_or<std::string>("user", "-") : "-";
  return out;
}

// ---------------------------------------------------------------- construction

TEST(ExecutorTest, ConstructedWithAnAppRegistersAsExecutor) {
  webexec::App app("web");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.name(), "");
  EXPECT_EQ(executor.app(), &app);
  EXPECT_EQ(app.extension<webexec::Executor>("executor").get(), &executor);
  EXPECT_EQ(executor.submit([](int x) { return x * 2; }, 21).result(), 42);
}

TEST(ExecutorTest, NamedExecutorRegistersAsNamePlusExecutor) {
  webexec::App app("web");
  webexec::Executor custom(app, "custom");
  webexec::Executor capital(app, "Custom");
  EXPECT_EQ(app.extension<webexec::Executor>("customexecutor").get(), &custom);
  EXPECT_EQ(app.extension<webexec::Executor>("Customexecutor").get(), &capital);
  EXPECT_FALSE(app.has_extension("executor"));
}

TEST(ExecutorTest, DestructionUnregistersFromTheApp) {
  webexec::App app("web");
  {
    webexec::Executor executor(app, "temp");
    EXPECT_TRUE(app.has_extension("tempexecutor"));
  }
  EXPECT_FALSE(app.has_extension("tempexecutor"));
  EXPECT_EQ(app.extension<webexec::Executor>("tempexecutor"), nullptr);
}

TEST(ExecutorTest, FactoryPatternInitAppLater) {
  webexec::App app("factory");
  webexec::Executor executor("late");
  EXPECT_EQ(executor.app(), nullptr);
  EXPECT_FALSE(app.has_extension("lateexecutor"));

  executor.init_app(app);
  EXPECT_EQ(executor.app(), &app);
  EXPECT_EQ(app.extension<webexec::Executor>("lateexecutor").get(), &executor);
  EXPECT_EQ(executor.submit([] { return webexec::current_app().name(); }).result(), "factory");
}

TEST(ExecutorTest, InvalidNamesAreRejected) {
  webexec::App app("names");
  for (const std::string name : {"bad-name", "bad name", "a.b", "x/y", "caf\xc3\xa9"}) {
    std::string what = message_of<std::invalid_argument>([&] { webexec::Executor e(name); });
    EXPECT_TRUE(contains(what, "letters, numbers or underscores")) << what;
    EXPECT_TRUE(contains(what, name)) << what;
    what = message_of<std::invalid_argument>([&] { webexec::Executor e(app, name); });
    EXPECT_TRUE(contains(what, name)) << what;
  }
  EXPECT_TRUE(app.extension_names().empty());
}

TEST(ExecutorTest, WordCharacterNamesAreAccepted) {
  webexec::App app("names");
  for (const std::string name : {"", "custom", "Custom_1", "_", "123"}) {
    webexec::Executor executor(app, name);
    EXPECT_EQ(executor.name(), name);
    EXPECT_TRUE(app.has_extension(name + "executor")) << name;
  }
}

TEST(ExecutorTest, UseBeforeInitAppThrowsInvalidStateError) {
  webexec::Executor executor("early");
  std::atomic<int> ran{0};
  const std::string what = message_of<webexec::InvalidStateError>(
      [&] { static_cast<void>(executor.submit([&] { ran.fetch_add(1); })); });
  EXPECT_TRUE(contains(what, "not initialised")) << what;
  EXPECT_TRUE(contains(what, "init_app")) << what;

  EXPECT_THROW(executor.submit_stored("k", [&] { ran.fetch_add(1); }), webexec::InvalidStateError);
  EXPECT_FALSE(executor.futures().contains("k"));
  EXPECT_THROW(static_cast<void>(executor.map([](int x) { return x; }, std::vector<int>{1, 2})),
               webexec::InvalidStateError);
  auto job = executor.job("early_job", [&] { ran.fetch_add(1); });
  EXPECT_THROW(static_cast<void>(job.submit()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(executor.max_workers()), webexec::InvalidStateError);
  EXPECT_THROW(executor.shutdown(), webexec::InvalidStateError);
  EXPECT_EQ(ran.load(), 0);
}

TEST(ExecutorTest, InitAppTwiceThrowsAndKeepsTheOnePool) {
  webexec::App app("twice");
  app.config().set("INITTWICE_EXECUTOR_MAX_WORKERS", 2);
  webexec::Executor executor(app, "inittwice");
  EXPECT_EQ(executor.submit([] { return 1; }).result(), 1);
  ASSERT_EQ(threads_named("inittwice_"), 1U);

  app.config().set("INITTWICE_EXECUTOR_MAX_WORKERS", 7);
  const std::string what = message_of<webexec::InvalidStateError>([&] { executor.init_app(app); });
  EXPECT_TRUE(contains(what, "already initialised")) << what;
  EXPECT_TRUE(contains(what, "inittwice")) << what;

  // The same pool: same size, and its idle worker takes the next task.
  EXPECT_EQ(executor.max_workers(), 2);
  EXPECT_EQ(executor.submit([] { return 2; }).result(), 2);
  EXPECT_EQ(threads_named("inittwice_"), 1U);
  EXPECT_EQ(app.extension<webexec::Executor>("inittwiceexecutor").get(), &executor);
}

TEST(ExecutorTest, InitAppWithASecondAppThrowsAndLeavesItAlone) {
  webexec::App first("first");
  webexec::App second("second");
  webexec::Executor executor(first, "shared");
  EXPECT_THROW(executor.init_app(second), webexec::InvalidStateError);
  EXPECT_EQ(executor.app(), &first);
  EXPECT_FALSE(second.has_extension("sharedexecutor"));
  EXPECT_EQ(executor.submit([] { return webexec::current_app().name(); }).result(), "first");
}

// ---------------------------------------------------------------- configuration

TEST(ExecutorTest, ConfigKeysArePrefixedWithTheUppercaseName) {
  const webexec::Executor unnamed;
  const webexec::Executor custom("custom");
  const webexec::Executor mixed("MiXed_2");
  EXPECT_EQ(unnamed.config_key("EXECUTOR_TYPE"), "EXECUTOR_TYPE");
  EXPECT_EQ(custom.config_key("EXECUTOR_TYPE"), "CUSTOM_EXECUTOR_TYPE");
  EXPECT_EQ(custom.config_key("EXECUTOR_MAX_WORKERS"), "CUSTOM_EXECUTOR_MAX_WORKERS");
  EXPECT_EQ(mixed.config_key("EXECUTOR_PUSH_APP_CONTEXT"), "MIXED_2_EXECUTOR_PUSH_APP_CONTEXT");
}

TEST(ExecutorTest, MaxWorkersIsHonoured) {
  webexec::App app("workers");
  app.config().set("EXECUTOR_MAX_WORKERS", 3);
  app.config().set("STR_EXECUTOR_MAX_WORKERS", "5");
  const webexec::Executor executor(app);
  const webexec::Executor from_string(app, "str");
  EXPECT_EQ(executor.max_workers(), 3);
  EXPECT_EQ(from_string.max_workers(), 5);
}

TEST(ExecutorTest, NamedExecutorReadsOnlyItsPrefixedKeys) {
  webexec::App app("prefixes");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  app.config().set("CUSTOM_EXECUTOR_MAX_WORKERS", 3);
  const webexec::Executor unnamed(app);
  const webexec::Executor custom(app, "custom");
  const webexec::Executor other(app, "other");
  EXPECT_EQ(unnamed.max_workers(), 1);
  EXPECT_EQ(custom.max_workers(), 3);
  // Unprefixed keys are no fallback for a named executor.
  EXPECT_EQ(other.max_workers(), webexec::ThreadPoolExecutor().max_workers());
}

TEST(ExecutorTest, BadMaxWorkersIsAnErrorNamingKeyAndValue) {
  webexec::App app("workers");
  app.config().set("BAD_EXECUTOR_MAX_WORKERS", "4x");
  std::string what = message_of<std::invalid_argument>([&] { webexec::Executor e(app, "bad"); });
  EXPECT_TRUE(contains(what, "BAD_EXECUTOR_MAX_WORKERS")) << what;
  EXPECT_TRUE(contains(what, "4x")) << what;

  app.config().set("BAD_EXECUTOR_MAX_WORKERS", "0");
  what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "bad"); });
  EXPECT_TRUE(contains(what, "BAD_EXECUTOR_MAX_WORKERS")) << what;

  app.config().set("BAD_EXECUTOR_MAX_WORKERS", "99999999999999999999");
  what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "bad"); });
  EXPECT_TRUE(contains(what, "99999999999999999999")) << what;
  // Validated before anything started: nothing registered.
  EXPECT_FALSE(app.has_extension("badexecutor"));
}

TEST(ExecutorTest, FailedInitAppLeavesTheExecutorUninitialised) {
  webexec::App app("failing");
  app.config().set("LATER_EXECUTOR_PROPAGATE_EXCEPTIONS", "maybe");
  webexec::Executor executor("later");
  EXPECT_THROW(executor.init_app(app), std::invalid_argument);
  EXPECT_EQ(executor.app(), nullptr);
  EXPECT_FALSE(app.has_extension("laterexecutor"));
  EXPECT_THROW(static_cast<void>(executor.submit([] {})), webexec::InvalidStateError);

  // Fixing the config makes the next init_app succeed.
  app.config().set("LATER_EXECUTOR_PROPAGATE_EXCEPTIONS", "no");
  executor.init_app(app);
  EXPECT_EQ(executor.submit([] { return 5; }).result(), 5);
}

TEST(ExecutorTest, ReadsAMissingKeyFromTheEnvironment) {
  const ScopedEnv env("ENVTEST_EXECUTOR_MAX_WORKERS", "3");
  webexec::App app("env");
  const webexec::Executor executor(app, "envtest");
  EXPECT_EQ(executor.max_workers(), 3);
}

TEST(ExecutorTest, AppConfigWinsOverTheEnvironment) {
  const ScopedEnv env("ENVWIN_EXECUTOR_MAX_WORKERS", "5");
  webexec::App app("env");
  app.config().set("ENVWIN_EXECUTOR_MAX_WORKERS", 2);
  const webexec::Executor executor(app, "envwin");
  EXPECT_EQ(executor.max_workers(), 2);
}

TEST(ExecutorTest, EnvironmentValuesAreParsedStrictly) {
  const ScopedEnv env("ENVBAD_EXECUTOR_PUSH_APP_CONTEXT", "enabled");
  webexec::App app("env");
  const std::string what =
      message_of<std::invalid_argument>([&] { webexec::Executor e(app, "envbad"); });
  EXPECT_TRUE(contains(what, "ENVBAD_EXECUTOR_PUSH_APP_CONTEXT")) << what;
  EXPECT_TRUE(contains(what, "enabled")) << what;
}

TEST(ExecutorTest, EnvironmentBooleanFalseIsFalse) {
  const ScopedEnv env("ENVOFF_EXECUTOR_PUSH_APP_CONTEXT", "False");
  webexec::App app("env");
  webexec::Executor executor(app, "envoff");
  EXPECT_FALSE(executor.submit([] { return webexec::has_app_context(); }).result());
}

TEST(ExecutorTest, ExecutorTypeThreadIsAccepted) {
  webexec::App app("types");
  app.config().set("EXECUTOR_TYPE", "thread");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit([] { return 1; }).result(), 1);
}

TEST(ExecutorTest, ExecutorTypeJunkIsAnErrorNamingKeyAndValue) {
  webexec::App app("types");
  // "process" is valid since Step 3 (tests/process); types are case-sensitive.
  for (const std::string type : {"Process", "fork", "threads", "THREAD", ""}) {
    app.config().set("KIND_EXECUTOR_TYPE", type);
    const std::string what =
        message_of<std::invalid_argument>([&] { webexec::Executor e(app, "kind"); });
    EXPECT_TRUE(contains(what, "KIND_EXECUTOR_TYPE")) << what;
    EXPECT_TRUE(contains(what, "'" + type + "'")) << what;
  }
  EXPECT_FALSE(app.has_extension("kindexecutor"));
}

TEST(ExecutorTest, StrictBooleanErrorsNameKeyAndValue) {
  webexec::App app("bools");
  app.config().set("P_EXECUTOR_PROPAGATE_EXCEPTIONS", "enabled");
  std::string what = message_of<std::invalid_argument>([&] { webexec::Executor e(app, "p"); });
  EXPECT_TRUE(contains(what, "P_EXECUTOR_PROPAGATE_EXCEPTIONS")) << what;
  EXPECT_TRUE(contains(what, "enabled")) << what;

  app.config().set("Q_EXECUTOR_PUSH_APP_CONTEXT", "y");
  what = message_of<std::invalid_argument>([&] { webexec::Executor e(app, "q"); });
  EXPECT_TRUE(contains(what, "Q_EXECUTOR_PUSH_APP_CONTEXT")) << what;
  EXPECT_TRUE(contains(what, "'y'")) << what;
}

TEST(ExecutorTest, FuturesMaxLengthDefaultsTo50) {
  webexec::App app("lengths");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.futures().max_length(), 50U);
  EXPECT_FALSE(executor.futures().ttl().has_value());
}

TEST(ExecutorTest, FuturesMaxLengthAndTtlAreHonoured) {
  webexec::App app("lengths");
  app.config().set("EXECUTOR_FUTURES_MAX_LENGTH", 2);
  app.config().set("EXECUTOR_FUTURES_TTL", "30");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.futures().max_length(), 2U);
  EXPECT_EQ(executor.futures().ttl(), std::chrono::steady_clock::duration(30s));
}

TEST(ExecutorTest, BadFuturesMaxLengthIsAnErrorNamingKeyAndValue) {
  webexec::App app("lengths");
  app.config().set("EXECUTOR_FUTURES_MAX_LENGTH", "lots");
  const std::string what = message_of<std::invalid_argument>([&] { webexec::Executor e(app); });
  EXPECT_TRUE(contains(what, "EXECUTOR_FUTURES_MAX_LENGTH")) << what;
  EXPECT_TRUE(contains(what, "lots")) << what;
}

TEST(ExecutorTest, FullCollectionRefusesSubmitStoredBeforeScheduling) {
  webexec::App app("bounded");
  app.config().set("EXECUTOR_FUTURES_MAX_LENGTH", 2);
  std::atomic<bool> third_ran{false};
  webexec::Executor executor(app);
  Gate gate;
  auto block = [w = gate.waiter()] {
    w.wait();
    return 1;
  };
  executor.submit_stored("a", block);
  executor.submit_stored("b", block);
  const std::string what = message_of<webexec::CapacityError>(
      [&] { executor.submit_stored("c", [&] { third_ran = true; }); });
  EXPECT_TRUE(contains(what, "'c'")) << what;
  EXPECT_FALSE(executor.futures().contains("c"));

  gate.open();
  EXPECT_EQ(executor.futures().result<int>("a"), 1);
  EXPECT_EQ(executor.futures().result<int>("b"), 1);
  // Now "a" has finished, so it makes room.
  executor.submit_stored("c", [] { return 3; });
  EXPECT_EQ(executor.futures().keys(), (std::vector<std::string>{"b", "c"}));
  executor.shutdown(true);
  EXPECT_FALSE(third_ran.load()) << "the refused task ran";
}

// ---------------------------------------------------------------- app context

TEST(ExecutorTest, CurrentAppWorksInTasksByDefault) {
  webexec::App app("apptask");
  webexec::Executor executor(app);
  auto future = executor.submit([] { return &webexec::current_app(); });
  EXPECT_EQ(future.result(), &app);
}

TEST(ExecutorTest, PushAppContextFalseRunsTasksWithoutTheApp) {
  webexec::App app("noapp");
  app.config().set("NOAPP_EXECUTOR_PUSH_APP_CONTEXT", "false");  // upstream: truthy
  webexec::Executor executor(app, "noapp");
  auto future = executor.submit([] {
    std::string app_error;
    std::string g_error;
    try {
      static_cast<void>(webexec::current_app());
    } catch (const webexec::ContextError& e) {
      app_error = e.what();
    }
    try {
      static_cast<void>(webexec::g());
    } catch (const webexec::ContextError& e) {
      g_error = e.what();
    }
    return std::make_pair(app_error, g_error);
  });
  const auto [app_error, g_error] = future.result();
  EXPECT_TRUE(contains(app_error, "EXECUTOR_PUSH_APP_CONTEXT")) << app_error;
  EXPECT_TRUE(contains(g_error, "EXECUTOR_PUSH_APP_CONTEXT")) << g_error;
}

TEST(ExecutorTest, PushAppContextFalseStillCarriesTheRequest) {
  webexec::App app("noapp");
  app.config().set("EXECUTOR_PUSH_APP_CONTEXT", false);
  webexec::Executor executor(app);
  TestRequest request(&app, "/no-app");
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([] { return describe_context(); });
  EXPECT_EQ(future.result(), "app=- path=/no-app user=-");
}

// ---------------------------------------------------------------- request context and g

TEST(ExecutorTest, SubmitOutsideAnyRequestWorks) {
  // Upstream #19/#52: submitting from startup code needs a fake request.
  webexec::App app("startup");
  webexec::Executor executor(app);
  auto future = executor.submit([] {
    std::string request_error;
    try {
      static_cast<void>(webexec::current_request());
    } catch (const webexec::ContextError& e) {
      request_error = e.what();
    }
    webexec::g().set("scratch", 1);  // the task still has its own g
    return std::make_pair(describe_context(), request_error);
  });
  const auto [seen, request_error] = future.result();
  EXPECT_EQ(seen, "app=startup path=- user=-");
  EXPECT_TRUE(contains(request_error, "no request context")) << request_error;
}

TEST(ExecutorTest, SubmitFromAPlainThreadOutsideAnyRequestWorks) {
  webexec::App app("cli");
  webexec::Executor executor(app);
  std::string seen;
  std::thread cli([&] { seen = executor.submit([] { return describe_context(); }).result(); });
  cli.join();
  EXPECT_EQ(seen, "app=cli path=- user=-");
}

TEST(ExecutorTest, TaskSeesTheRequestSnapshot) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/items/7");
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([] { return &webexec::current_request(); });
  const webexec::RequestContext* seen = future.result();
  EXPECT_EQ(seen, request.snapshot().get());
  EXPECT_EQ(seen->path, "/items/7");
  EXPECT_EQ(seen->method, "POST");
  EXPECT_EQ(seen->header("x-test"), "yes");
}

TEST(ExecutorTest, TaskWritesToGDoNotReachTheRequest) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/g");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([] {
    const std::string before = webexec::g().get<std::string>("user");
    webexec::g().set("user", std::string("bob"));
    webexec::g().set("task_only", 1);
    return before + "->" + webexec::g().get<std::string>("user");
  });
  EXPECT_EQ(future.result(), "alice->bob");
  EXPECT_EQ(request.g().get<std::string>("user"), "alice");
  EXPECT_FALSE(request.g().contains("task_only"));
}

TEST(ExecutorTest, RequestWritesToGAfterSubmitDoNotReachTheTask) {
  webexec::App app("web");
  webexec::Executor executor(app);
  Gate gate;
  TestRequest request(&app, "/g");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([w = gate.waiter()] {
    w.wait();
    return webexec::g().get<std::string>("user") + "," +
           std::to_string(webexec::g().contains("later"));
  });
  request.g().set("user", std::string("carol"));
  request.g().set("later", true);
  gate.open();
  EXPECT_EQ(future.result(), "alice,0");
}

TEST(ExecutorTest, EachTaskGetsItsOwnG) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/g");
  request.g().set("n", 0);
  const webexec::detail::ScopedRequest scope(&request);
  auto bump = [] {
    webexec::g().set("n", webexec::g().get<int>("n") + 1);
    return webexec::g().get<int>("n");
  };
  auto a = executor.submit(bump);
  auto b = executor.submit(bump);
  EXPECT_EQ(a.result(), 1);
  EXPECT_EQ(b.result(), 1);
  EXPECT_EQ(request.g().get<int>("n"), 0);
}

TEST(ExecutorTest, NestedSubmitPassesTheTasksContextOn) {
  webexec::App app("nested");
  app.config().set("EXECUTOR_MAX_WORKERS", 2);
  webexec::Executor executor(app);
  Gate gate;
  webexec::Future<std::string> outer;
  {
    TestRequest request(&app, "/outer");
    request.g().set("user", std::string("alice"));
    const webexec::detail::ScopedRequest scope(&request);
    outer = executor.submit([&executor, w = gate.waiter()] {
      w.wait();  // by now the request has ended
      webexec::g().set("depth", 1);
      auto inner = executor.submit([] {
        return describe_context() + " depth=" + std::to_string(webexec::g().get<int>("depth"));
      });
      return inner.result();
    });
  }
  gate.open();
  EXPECT_EQ(outer.result(), "app=nested path=/outer user=alice depth=1");
}

TEST(ExecutorTest, RequestWritesBetweenSubmitsReachLaterTasks) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/g");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  auto read_user = [] { return webexec::g().get<std::string>("user"); };
  auto first = executor.submit(read_user);
  request.g().set("user", std::string("bob"));
  auto second = executor.submit(read_user);
  auto third = executor.submit(read_user);
  request.g().erase("user");
  request.g().set("user", std::string("carol"));
  auto fourth = executor.submit(read_user);
  EXPECT_EQ(first.result(), "alice");
  EXPECT_EQ(second.result(), "bob");
  EXPECT_EQ(third.result(), "bob");
  EXPECT_EQ(fourth.result(), "carol");
}

TEST(ExecutorTest, RequestGReplacedOrMovedOutBetweenSubmitsReachesLaterTasks) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/g");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);
  auto read_user = [] { return webexec::g().get_or<std::string>("user", "-"); };
  auto first = executor.submit(read_user);
  request.g() = webexec::G();
  auto second = executor.submit(read_user);
  webexec::G other;
  other.set("user", std::string("dave"));
  request.g() = other;
  auto third = executor.submit(read_user);
  const webexec::G taken = std::move(request.g());
  auto fourth = executor.submit(read_user);
  EXPECT_EQ(first.result(), "alice");
  EXPECT_EQ(second.result(), "-");
  EXPECT_EQ(third.result(), "dave");
  EXPECT_EQ(fourth.result(), "-");
  EXPECT_EQ(taken.get<std::string>("user"), "dave");
}

TEST(ExecutorTest, ContextIsCapturedBeforeTheArgumentsAreMovedIn) {
  webexec::App app("web");
  webexec::Executor executor(app);
  TestRequest request(&app, "/g");
  request.g().set("user", std::string("erin"));
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit(
      [](const webexec::G& moved) {
        return webexec::g().get_or<std::string>("user", "-") + "/" +
               moved.get_or<std::string>("user", "-");
      },
      std::move(webexec::g()));
  EXPECT_EQ(future.result(), "erin/erin");
}

/// A request whose snapshot cannot be built (the first `fail` times).
class FailingRequest : public webexec::detail::RequestScope {
 public:
  FailingRequest(webexec::App* app, int fail) : RequestScope(app), fail_(fail) {}

 protected:
  [[nodiscard]] std::shared_ptr<const webexec::RequestContext> build_snapshot() const override {
    if (fail_-- > 0) throw std::runtime_error("cannot read the request");
    auto snapshot = std::make_shared<webexec::RequestContext>();
    snapshot->path = "/recovered";
    return snapshot;
  }

 private:
  mutable int fail_;
};

TEST(ExecutorTest, AFailedCaptureSchedulesNothingAndLeavesTheArguments) {
  webexec::App app("web");
  webexec::Executor executor(app);
  FailingRequest request(&app, 1);
  request.g().set("user", std::string("fay"));
  const webexec::detail::ScopedRequest scope(&request);
  std::atomic<int> ran{0};
  auto task = [&ran](const std::string& word) {
    ++ran;
    return webexec::current_request().path + " " + word + " " +
           webexec::g().get<std::string>("user");
  };
  std::string word = "kept";
  EXPECT_THROW((void)executor.submit(task, std::move(word)), std::runtime_error);
  EXPECT_EQ(word, "kept");  // not moved from: the capture failed first
  EXPECT_EQ(executor.submit(task, std::move(word)).result(), "/recovered kept fay");
  executor.shutdown(true);
  EXPECT_EQ(ran.load(), 1);
}

TEST(ExecutorTest, TasksSubmittedOutsideARequestDoNotShareG) {
  webexec::App app("startup");
  webexec::Executor executor(app);
  auto writer = executor.submit([] {
    webexec::g().set("x", 1);
    return webexec::g().size();
  });
  EXPECT_EQ(writer.result(), 1U);
  auto reader = executor.submit([] { return webexec::g().contains("x"); });
  EXPECT_FALSE(reader.result());
}

TEST(ExecutorTest, SuccessiveRequestsOnOneThreadEachSeeTheirOwn) {
  webexec::App app("web");
  webexec::Executor executor(app);
  std::vector<webexec::Future<std::string>> futures;
  for (const std::string name : {"ann", "ben", "cat"}) {
    TestRequest request(&app, "/" + name);
    request.g().set("user", name);
    const webexec::detail::ScopedRequest scope(&request);
    futures.push_back(executor.submit([] { return describe_context(); }));
  }
  EXPECT_EQ(futures[0].result(), "app=web path=/ann user=ann");
  EXPECT_EQ(futures[1].result(), "app=web path=/ben user=ben");
  EXPECT_EQ(futures[2].result(), "app=web path=/cat user=cat");
}

TEST(ExecutorTest, ExecutorsSharingARequestKeepTheirOwnSettings) {
  webexec::App app("two");
  app.config().set("BETA_EXECUTOR_PUSH_APP_CONTEXT", false);
  app.config().set("BETA_EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  ReportLog log;
  log.install(app);
  webexec::Executor alpha(app, "alpha");
  webexec::Executor beta(app, "beta");
  TestRequest request(&app, "/both");
  request.g().set("user", std::string("hank"));
  const webexec::detail::ScopedRequest scope(&request);
  auto context = [] { return describe_context(); };
  auto a1 = alpha.submit(context);
  auto b1 = beta.submit(context);
  auto a2 = alpha.submit(context);
  auto b2 = beta.submit(context);
  EXPECT_EQ(a1.result(), "app=two path=/both user=hank");
  EXPECT_EQ(b1.result(), "app=- path=/both user=-");
  EXPECT_EQ(a2.result(), "app=two path=/both user=hank");
  EXPECT_EQ(b2.result(), "app=- path=/both user=-");

  EXPECT_THROW(alpha.submit_stored("a_fail", [] { throw std::runtime_error("a"); }).result(),
               std::runtime_error);
  EXPECT_THROW(beta.submit_stored("b_fail", [] { throw std::runtime_error("b"); }).result(),
               std::runtime_error);
  alpha.shutdown(true);
  beta.shutdown(true);
  const auto reports = log.reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].executor, "beta");
  EXPECT_EQ(reports[0].key, "b_fail");
}

TEST(ExecutorTest, AReplacedExecutorInTheSameRequestUsesItsOwnSettings) {
  webexec::App app("replaced");
  TestRequest request(&app, "/replaced");
  const webexec::detail::ScopedRequest scope(&request);
  std::optional<webexec::Executor> executor;  // the second one reuses the first one's storage

  executor.emplace(app, "first");
  EXPECT_TRUE(executor->submit([] { return webexec::has_app_context(); }).result());
  executor.reset();

  app.config().set("SECOND_EXECUTOR_PUSH_APP_CONTEXT", false);
  executor.emplace(app, "second");
  EXPECT_FALSE(executor->submit([] { return webexec::has_app_context(); }).result())
      << "the task ran with the app context of the destroyed executor";
}

TEST(ExecutorTest, StoredTasksOfOneRequestReportTheirOwnKeys) {
  webexec::App app("keys");
  app.config().set("EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  ReportLog log;
  log.install(app);
  webexec::Executor executor(app);
  TestRequest request(&app, "/keys");
  const webexec::detail::ScopedRequest scope(&request);
  auto fail = [](const std::string& message) { throw std::runtime_error(message); };
  auto first = executor.submit_stored("first_key", fail, std::string("one"));
  auto second = executor.submit_stored("second_key", fail, std::string("two"));
  auto plain = executor.submit(fail, std::string("three"));
  EXPECT_THROW(first.result(), std::runtime_error);
  EXPECT_THROW(second.result(), std::runtime_error);
  EXPECT_THROW(plain.result(), std::runtime_error);
  ASSERT_TRUE(log.wait_for(3));
  std::vector<std::string> seen;
  for (const auto& r : log.reports()) seen.push_back(r.key + "=" + r.message);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"=three", "first_key=one", "second_key=two"}));
}

TEST(ExecutorTest, NestedSubmitToAnotherExecutorUsesThatExecutorsSettings) {
  webexec::App app("nested");
  app.config().set("INNER_EXECUTOR_PUSH_APP_CONTEXT", false);
  app.config().set("INNER_EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  ReportLog log;
  log.install(app);
  webexec::Executor inner(app, "inner");
  webexec::Executor outer(app, "outer");
  TestRequest request(&app, "/nested");
  request.g().set("user", std::string("ivy"));
  const webexec::detail::ScopedRequest scope(&request);
  auto result = outer.submit([&inner] {
    const std::string seen = inner.submit([] { return describe_context(); }).result();
    std::string error;
    try {
      inner.submit([] { throw std::runtime_error("inner failed"); }).result();
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    return seen + " | " + error;
  });
  EXPECT_EQ(result.result(), "app=- path=/nested user=- | inner failed");
  ASSERT_TRUE(log.wait_for(1));
  const auto reports = log.reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].executor, "inner");
  EXPECT_EQ(reports[0].message, "inner failed");
}

TEST(ExecutorTest, NestedSubmitFromATaskWithoutTheAppToOneWithIt) {
  webexec::App app("nested");
  app.config().set("BARE_EXECUTOR_PUSH_APP_CONTEXT", false);
  webexec::Executor bare(app, "bare");
  webexec::Executor full(app, "full");
  TestRequest request(&app, "/bare");
  const webexec::detail::ScopedRequest scope(&request);
  auto result =
      bare.submit([&full] { return full.submit([] { return describe_context(); }).result(); });
  EXPECT_EQ(result.result(), "app=nested path=/bare user=-");
}

// ---------------------------------------------------------------- map

TEST(ExecutorTest, MapGivesEachOverlappingItemItsOwnContext) {
  // Upstream #53: items share one request context and crash when they overlap.
  constexpr int kItems = 4;
  webexec::App app("mapper");
  app.config().set("EXECUTOR_MAX_WORKERS", kItems);
  Rendezvous all_running(kItems);
  webexec::Executor executor(app);
  TestRequest request(&app, "/map");
  request.g().set("user", std::string("alice"));
  const webexec::detail::ScopedRequest scope(&request);

  auto results = executor.map(
      [&all_running](int item) {
        const bool had_item = webexec::g().contains("item");
        webexec::g().set("item", item);
        // Every item has written g before any reads it back.
        const bool overlapped = all_running.arrive_and_wait();
        return std::to_string(item) + ": " + describe_context() +
               " item=" + std::to_string(webexec::g().get<int>("item")) +
               " had_item=" + std::to_string(had_item) +
               " overlapped=" + std::to_string(overlapped);
      },
      std::vector<int>{0, 1, 2, 3});
  std::vector<std::string> seen;
  for (const std::string& line : results) seen.push_back(line);

  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i) {
    const std::string n = std::to_string(i);
    EXPECT_EQ(seen[static_cast<std::size_t>(i)],
              n + ": app=mapper path=/map user=alice item=" + n + " had_item=0 overlapped=1");
  }
  EXPECT_FALSE(request.g().contains("item"));
}

TEST(ExecutorTest, MapAppliesDefaultDoneCallbacksToEveryItem) {
  // Upstream: map futures get no default done callbacks.
  webexec::App app("mapper");
  Log seen;
  webexec::Executor executor(app);
  executor.add_default_done_callback(
      [&](const webexec::AnyFuture& f) { seen.add(std::to_string(f.result<int>())); });
  std::vector<int> squares;
  for (int square : executor.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3, 4})) {
    squares.push_back(square);
  }
  EXPECT_EQ(squares, (std::vector<int>{1, 4, 9, 16}));
  ASSERT_TRUE(seen.wait_for(4));
  auto lines = seen.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"1", "16", "4", "9"}));
}

// ---------------------------------------------------------------- stored futures

TEST(ExecutorTest, SubmitStoredStoresTheFutureUnderItsKey) {
  webexec::App app("stored");
  webexec::Executor executor(app);
  auto future = executor.submit_stored(
      "calc", [](int a, int b) { return a * b; }, 6, 7);
  EXPECT_EQ(future.result(), 42);
  EXPECT_TRUE(executor.futures().contains("calc"));
  EXPECT_EQ(executor.futures().result<int>("calc"), 42);
  const auto popped = executor.futures().pop("calc");
  ASSERT_TRUE(popped.has_value());
  EXPECT_EQ(popped->result<int>(), 42);
  EXPECT_FALSE(executor.futures().contains("calc"));
}

TEST(ExecutorTest, SubmitStoredDuplicateKeyThrowsAndTheTaskNeverRuns) {
  // Upstream schedules first and checks after: the refused task runs as an orphan.
  webexec::App app("stored");
  std::atomic<bool> duplicate_ran{false};
  webexec::Executor executor(app);
  Gate gate;
  auto first = executor.submit_stored("job", [w = gate.waiter()] {
    w.wait();
    return 1;
  });
  const std::string what = message_of<std::invalid_argument>(
      [&] { executor.submit_stored("job", [&] { duplicate_ran = true; }); });
  EXPECT_TRUE(contains(what, "job")) << what;
  EXPECT_TRUE(contains(what, "already exists")) << what;
  gate.open();
  EXPECT_EQ(first.result(), 1);
  EXPECT_EQ(executor.futures().result<int>("job"), 1);
  executor.shutdown(true);  // runs anything still queued
  EXPECT_FALSE(duplicate_ran.load()) << "the refused task ran";
}

// ---------------------------------------------------------------- jobs

TEST(ExecutorTest, JobIsDirectlyCallable) {
  // Upstream's ExecutorJob is not callable.
  webexec::App app("jobs");
  webexec::Executor executor(app);
  auto square = executor.job([](int x) { return x * x; });
  auto named = executor.job("cube", [](int x) { return x * x * x; });
  EXPECT_EQ(square(7), 49);
  EXPECT_EQ(named(3), 27);
  EXPECT_EQ(named.name(), "cube");
  EXPECT_EQ(square.name(), "");
  EXPECT_EQ(named.function()(2), 8);
}

TEST(ExecutorTest, JobSubmitMapAndSubmitStoredWork) {
  webexec::App app("jobs");
  webexec::Executor executor(app);
  TestRequest request(&app, "/job");
  const webexec::detail::ScopedRequest scope(&request);
  auto square = executor.job("square", [](int x) {
    return x * x + (webexec::current_request().path == "/job" ? 0 : 1000);
  });
  EXPECT_EQ(square.submit(8).result(), 64);
  std::vector<int> mapped;
  for (int v : square.map(std::vector<int>{1, 2, 3})) mapped.push_back(v);
  EXPECT_EQ(mapped, (std::vector<int>{1, 4, 9}));
  auto stored = square.submit_stored("sq9", 9);
  EXPECT_EQ(stored.result(), 81);
  EXPECT_EQ(executor.futures().result<int>("sq9"), 81);
}

TEST(ExecutorTest, RecursiveFunctionThroughTheJobWorks) {
  // Upstream's README fib example calls the decorated name and fails.
  webexec::App app("jobs");
  webexec::Executor executor(app);
  using Fib = std::function<long(int)>;
  const webexec::Job<Fib>* fib_job = nullptr;
  auto fib = executor.job("fib", Fib([&fib_job](int n) -> long {
                            return n < 2 ? n : (*fib_job)(n - 1) + (*fib_job)(n - 2);
                          }));
  fib_job = &fib;
  EXPECT_EQ(fib(10), 55);
  EXPECT_EQ(fib.submit(5).result(), 5);
  EXPECT_EQ(fib.submit(15).result(), 610);
}

// ---------------------------------------------------------------- default done callbacks

TEST(ExecutorTest, DefaultDoneCallbackRunsForEverySubmission) {
  webexec::App app("callbacks");
  Log seen;
  webexec::Executor executor(app);
  executor.add_default_done_callback(
      [&](const webexec::AnyFuture& f) { seen.add(std::to_string(f.result<int>())); });
  auto job = executor.job("ident", [](int x) { return x; });

  static_cast<void>(executor.submit([] { return 1; }).result());
  static_cast<void>(executor.submit_stored("two", [] { return 2; }).result());
  for (int v : executor.map([](int x) { return x; }, std::vector<int>{3, 4, 5})) {
    static_cast<void>(v);
  }
  static_cast<void>(job.submit(6).result());
  for (int v : job.map(std::vector<int>{7})) static_cast<void>(v);
  static_cast<void>(job.submit_stored("eight", 8).result());

  ASSERT_TRUE(seen.wait_for(8)) << "callbacks seen: " << seen.lines().size();
  auto lines = seen.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7", "8"}));
}

TEST(ExecutorTest, DefaultDoneCallbacksRunInOrderOfRegistration) {
  webexec::App app("callbacks");
  Log seen;
  webexec::Executor executor(app);
  executor.add_default_done_callback([&](const webexec::AnyFuture&) { seen.add("first"); });
  executor.add_default_done_callback([&](const webexec::AnyFuture&) { seen.add("second"); });
  static_cast<void>(executor.submit([] {}).result());
  ASSERT_TRUE(seen.wait_for(2));
  EXPECT_EQ(seen.lines(), (std::vector<std::string>{"first", "second"}));
}

TEST(ExecutorTest, DefaultDoneCallbackRunsInsideTheTasksContext) {
  // Upstream runs default callbacks with no Flask context at all.
  webexec::App app("cbctx");
  Log seen;
  webexec::Executor executor(app);
  executor.add_default_done_callback([&](const webexec::AnyFuture&) {
    seen.add(describe_context() + (&webexec::current_app() == &app ? " same-app" : " other-app"));
  });
  {
    TestRequest request(&app, "/with-request");
    request.g().set("user", std::string("dave"));
    const webexec::detail::ScopedRequest scope(&request);
    static_cast<void>(executor.submit([] {}).result());
  }
  static_cast<void>(executor.submit([] {}).result());
  ASSERT_TRUE(seen.wait_for(2));
  auto lines = seen.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"app=cbctx path=- user=- same-app",
                                             "app=cbctx path=/with-request user=dave same-app"}));
}

TEST(ExecutorTest, ThrowingDefaultCallbackGoesToTheErrorHandler) {
  Log errors;
  const ScopedErrorHandler handler([&](const char* where, std::exception_ptr error) {
    errors.add(std::string(where) + ": " + what_of(error));
  });
  webexec::App app("throwing");
  Log seen;
  webexec::Executor executor(app);
  executor.add_default_done_callback(
      [](const webexec::AnyFuture&) { throw std::runtime_error("callback broke"); });
  executor.add_default_done_callback([&](const webexec::AnyFuture&) { seen.add("later"); });

  EXPECT_EQ(executor.submit([] { return 1; }).result(), 1);
  ASSERT_TRUE(errors.wait_for(1));
  ASSERT_TRUE(seen.wait_for(1)) << "the next default callback did not run";
  EXPECT_EQ(errors.lines()[0], "default done callback: callback broke");
  // The executor keeps working.
  EXPECT_EQ(executor.submit([] { return 2; }).result(), 2);
  ASSERT_TRUE(seen.wait_for(2));
}

// ---------------------------------------------------------------- done callbacks on futures

TEST(ExecutorTest, DoneCallbackRunsInTheContextOfItsRegistration) {
  webexec::App app("registered");
  std::promise<std::string> seen;
  auto seen_future = seen.get_future();
  webexec::Executor executor(app);
  Gate gate;
  // Submitted outside any request, so the task itself has none.
  auto future = executor.submit([w = gate.waiter()] {
    w.wait();
    return 1;
  });
  const auto test_thread = std::this_thread::get_id();
  {
    TestRequest request(&app, "/registered");
    request.g().set("user", std::string("erin"));
    const webexec::detail::ScopedRequest scope(&request);
    future.add_done_callback([&seen, test_thread](const webexec::Future<int>& f) {
      seen.set_value(
          describe_context() + " result=" + std::to_string(f.result()) +
          (std::this_thread::get_id() == test_thread ? " on-test-thread" : " on-worker"));
    });
  }  // the request is over before the callback runs
  gate.open();
  ASSERT_EQ(seen_future.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(seen_future.get(), "app=registered path=/registered user=erin result=1 on-worker");
}

TEST(ExecutorTest, DoneCallbackRegisteredOutsideAnyContextUsesTheTasksContext) {
  webexec::App app("registered");
  std::promise<std::string> seen;
  auto seen_future = seen.get_future();
  webexec::Executor executor(app);
  Gate gate;
  webexec::Future<int> future;
  {
    TestRequest request(&app, "/task-request");
    request.g().set("user", std::string("frank"));
    const webexec::detail::ScopedRequest scope(&request);
    future = executor.submit([w = gate.waiter()] {
      w.wait();
      return 1;
    });
  }
  future.add_done_callback(
      [&seen](const webexec::Future<int>&) { seen.set_value(describe_context()); });
  gate.open();
  ASSERT_EQ(seen_future.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(seen_future.get(), "app=registered path=/task-request user=frank");
}

TEST(ExecutorTest, DoneCallbackOnAFinishedFutureRunsAtOnceInTheRegisteringContext) {
  webexec::App app("registered");
  webexec::Executor executor(app);
  auto future = executor.submit([] { return 1; });
  ASSERT_EQ(future.result(), 1);
  std::string seen;
  TestRequest request(&app, "/late");
  const webexec::detail::ScopedRequest scope(&request);
  future.add_done_callback([&seen](const webexec::Future<int>&) { seen = describe_context(); });
  EXPECT_EQ(seen, "app=registered path=/late user=-");
}

TEST(ExecutorTest, DoneCallbackRegisteredWhileTheTaskWritesGIsRaceFree) {
  // Future members may be called concurrently with the running task. A
  // callback registered outside any context copies the task's context; the
  // task keeps writing its g meanwhile. The flag below is relaxed on purpose:
  // it orders the two sides in time without creating a happens-before edge,
  // so ThreadSanitizer sees whatever the library itself does not synchronise.
  webexec::App app("racing");
  std::promise<void> wrote;
  std::atomic<bool> registered{false};
  std::promise<bool> seen;
  auto seen_future = seen.get_future();
  webexec::Executor executor(app);
  auto future = executor.submit([&wrote, &registered] {
    webexec::g().set("i", 0);
    wrote.set_value();
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (!registered.load(std::memory_order_relaxed) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    webexec::g().set("i", 1);
    webexec::g().set("j", 2);
    return webexec::g().get<int>("i");
  });
  ASSERT_EQ(wrote.get_future().wait_for(kPatience), std::future_status::ready);
  future.add_done_callback(
      [&seen](const webexec::Future<int>&) { seen.set_value(webexec::g().contains("i")); });
  registered.store(true, std::memory_order_relaxed);
  EXPECT_EQ(future.result(), 1);
  ASSERT_EQ(seen_future.wait_for(kPatience), std::future_status::ready);
  EXPECT_TRUE(seen_future.get());
}

// ---------------------------------------------------------------- propagated exceptions

TEST(ExecutorTest, PropagateExceptionsReportsStoredTaskFailuresToTheApp) {
  // Upstream #24: the option only logs to the concurrent.futures logger.
  webexec::App app("propagate");
  app.config().set("CUSTOM_EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  ReportLog log;
  log.install(app);
  webexec::Executor executor(app, "custom");
  auto future =
      executor.submit_stored("calc_power", []() -> int { throw std::overflow_error("too big"); });
  EXPECT_THROW(static_cast<void>(future.result()), std::overflow_error);

  ASSERT_TRUE(log.wait_for(1));
  const auto reports = log.reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].origin, "task");
  EXPECT_EQ(reports[0].executor, "custom");
  EXPECT_EQ(reports[0].key, "calc_power");
  EXPECT_EQ(reports[0].message, "too big");
  EXPECT_EQ(what_of(reports[0].exception), "too big");
  EXPECT_EQ(webexec::describe(reports[0]),
            "task 'calc_power' of executor 'custom' failed: too big");
  // The future still carries the exception.
  EXPECT_EQ(what_of(*executor.futures().exception("calc_power")), "too big");
}

TEST(ExecutorTest, PropagateExceptionsNamesTheJobAndPlainSubmits) {
  webexec::App app("propagate");
  app.config().set("EXECUTOR_PROPAGATE_EXCEPTIONS", "yes");
  ReportLog log;
  log.install(app);
  webexec::Executor executor(app);
  auto job = executor.job("nightly_report", [] { throw std::runtime_error("no data"); });
  EXPECT_THROW(job.submit().result(), std::runtime_error);
  ASSERT_TRUE(log.wait_for(1));
  EXPECT_THROW(executor.submit([] { throw std::runtime_error("plain"); }).result(),
               std::runtime_error);
  ASSERT_TRUE(log.wait_for(2));

  const auto reports = log.reports();
  ASSERT_EQ(reports.size(), 2U);
  EXPECT_EQ(reports[0].executor, "");
  EXPECT_EQ(reports[0].key, "nightly_report");
  EXPECT_EQ(reports[0].message, "no data");
  EXPECT_EQ(reports[1].key, "");
  EXPECT_EQ(reports[1].message, "plain");
}

TEST(ExecutorTest, PropagateExceptionsOffReportsNothing) {
  webexec::App app("quiet");
  app.config().set("LOUD_EXECUTOR_PROPAGATE_EXCEPTIONS", "false");  // upstream: truthy
  ReportLog log;
  log.install(app);
  webexec::Executor by_default(app);
  webexec::Executor explicit_false(app, "loud");
  EXPECT_THROW(by_default.submit([] { throw std::runtime_error("a"); }).result(),
               std::runtime_error);
  EXPECT_THROW(explicit_false.submit([] { throw std::runtime_error("b"); }).result(),
               std::runtime_error);
  by_default.shutdown(true);
  explicit_false.shutdown(true);
  EXPECT_TRUE(log.reports().empty());
}

TEST(ExecutorTest, PropagateExceptionsIgnoresSuccessfulTasks) {
  webexec::App app("propagate");
  app.config().set("EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  ReportLog log;
  log.install(app);
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit([] { return 1; }).result(), 1);
  executor.shutdown(true);
  EXPECT_TRUE(log.reports().empty());
}

// ---------------------------------------------------------------- teardown hooks

TEST(ExecutorTest, TeardownHooksRunAfterEveryTaskWithItsException) {
  webexec::App app("teardown");
  Log torn_down;
  app.teardown_appcontext(
      [&](std::exception_ptr error) { torn_down.add(error ? "error:" + what_of(error) : "ok"); });
  webexec::Executor executor(app);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(executor.submit([i] { return i; }).result(), i);
  EXPECT_THROW(executor.submit([] { throw std::runtime_error("query failed"); }).result(),
               std::runtime_error);
  ASSERT_TRUE(torn_down.wait_for(4));
  executor.shutdown(true);
  auto lines = torn_down.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"error:query failed", "ok", "ok", "ok"}));
}

TEST(ExecutorTest, TeardownHooksRunOnTheTasksThreadInsideItsContext) {
  webexec::App app("teardown");
  std::promise<std::pair<std::thread::id, std::string>> hook_seen;
  auto hook_future = hook_seen.get_future();
  app.teardown_appcontext([&](std::exception_ptr) {
    hook_seen.set_value({std::this_thread::get_id(), describe_context()});
  });
  webexec::Executor executor(app);
  TestRequest request(&app, "/teardown");
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([] {
    webexec::g().set("user", std::string("gina"));
    return std::this_thread::get_id();
  });
  const auto task_thread = future.result();
  ASSERT_EQ(hook_future.wait_for(kPatience), std::future_status::ready);
  const auto [hook_thread, hook_context] = hook_future.get();
  EXPECT_EQ(hook_thread, task_thread);
  EXPECT_EQ(hook_context, "app=teardown path=/teardown user=gina");
}

TEST(ExecutorTest, TeardownHooksSeeTheContextOfATaskThatThrew) {
  webexec::App app("teardown");
  Log seen;
  app.teardown_appcontext([&](std::exception_ptr error) {
    seen.add(describe_context() + (error ? " error=" + what_of(error) : " no error"));
  });
  webexec::Executor executor(app);
  TestRequest request(&app, "/fails");
  const webexec::detail::ScopedRequest scope(&request);
  auto future = executor.submit([] {
    webexec::g().set("user", std::string("hal"));
    throw std::runtime_error("disk full");
  });
  EXPECT_THROW(future.result(), std::runtime_error);
  ASSERT_TRUE(seen.wait_for(1));
  EXPECT_EQ(seen.lines(),
            (std::vector<std::string>{"app=teardown path=/fails user=hal error=disk full"}));
}

TEST(ExecutorTest, ATeardownHookAddedAfterATaskRanAppliesToLaterTasks) {
  webexec::App app("teardown");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit([] { return 1; }).result(), 1);  // ran without hooks
  Log torn_down;
  app.teardown_appcontext([&](std::exception_ptr) { torn_down.add(describe_context()); });
  EXPECT_EQ(executor.submit([] { return 2; }).result(), 2);
  ASSERT_TRUE(torn_down.wait_for(1));
  executor.shutdown(true);
  EXPECT_EQ(torn_down.lines(), (std::vector<std::string>{"app=teardown path=- user=-"}));
}

TEST(ExecutorTest, TeardownHooksRunAfterDoneCallbacksInTheirContext) {
  webexec::App app("teardown");
  Log torn_down;
  app.teardown_appcontext([&](std::exception_ptr) { torn_down.add(describe_context()); });
  webexec::Executor executor(app);
  auto future = executor.submit([] { return 1; });
  ASSERT_EQ(future.result(), 1);
  ASSERT_TRUE(torn_down.wait_for(1));  // the task's own teardown
  TestRequest request(&app, "/callback");
  request.g().set("user", std::string("gus"));
  const webexec::detail::ScopedRequest scope(&request);
  future.add_done_callback([](const auto&) {});  // done: runs now, in this request's context
  ASSERT_TRUE(torn_down.wait_for(2));
  EXPECT_EQ(torn_down.lines(), (std::vector<std::string>{"app=teardown path=- user=-",
                                                         "app=teardown path=/callback user=gus"}));
}

TEST(ExecutorTest, TasksWithoutTheAppContextRunNoTeardownHooks) {
  webexec::App app("teardown");
  app.config().set("EXECUTOR_PUSH_APP_CONTEXT", false);
  std::atomic<int> hooks{0};
  app.teardown_appcontext([&](std::exception_ptr) { ++hooks; });
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit([] { return 7; }).result(), 7);
  EXPECT_THROW(executor.submit([] { throw std::runtime_error("x"); }).result(), std::runtime_error);
  executor.shutdown(true);
  EXPECT_EQ(hooks.load(), 0);
}

// ---------------------------------------------------------------- shutdown

TEST(ExecutorTest, ShutdownWaitRunsQueuedWork) {
  webexec::App app("shutdown");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  std::atomic<int> ran{0};
  webexec::Executor executor(app);
  std::vector<webexec::Future<void>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(executor.submit([&] { ran.fetch_add(1); }));
  executor.shutdown(true);
  EXPECT_EQ(ran.load(), 5);
  for (const auto& f : futures) EXPECT_TRUE(f.done());
}

TEST(ExecutorTest, ShutdownCancelFuturesCancelsQueuedWork) {
  webexec::App app("shutdown");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  std::atomic<int> queued_ran{0};
  std::promise<void> started;
  webexec::Executor executor(app);
  Gate gate;
  auto running = executor.submit([w = gate.waiter(), &started] {
    started.set_value();
    w.wait();
    return 1;
  });
  ASSERT_EQ(started.get_future().wait_for(kPatience), std::future_status::ready);
  std::vector<webexec::Future<void>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(executor.submit([&] { queued_ran.fetch_add(1); }));

  executor.shutdown(false, true);
  for (const auto& f : queued) EXPECT_TRUE(f.cancelled());
  gate.open();
  EXPECT_EQ(running.result(), 1);
  executor.shutdown(true);
  EXPECT_EQ(queued_ran.load(), 0);
}

TEST(ExecutorTest, SubmitAfterShutdownThrowsShutdownError) {
  webexec::App app("shutdown");
  webexec::Executor executor(app);
  executor.shutdown();
  EXPECT_THROW(static_cast<void>(executor.submit([] { return 1; })), webexec::ShutdownError);
  EXPECT_THROW(executor.submit_stored("late", [] { return 1; }), webexec::ShutdownError);
  EXPECT_FALSE(executor.futures().contains("late"));
  EXPECT_THROW(static_cast<void>(executor.map([](int x) { return x; }, std::vector<int>{1})),
               webexec::ShutdownError);
  auto job = executor.job("late_job", [] { return 1; });
  EXPECT_THROW(static_cast<void>(job.submit()), webexec::ShutdownError);
  EXPECT_EQ(job(), 1) << "calling a job directly needs no executor";
}

}  // namespace
