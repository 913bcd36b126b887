// Executor with EXECUTOR_TYPE=process (Step 3): registered jobs run in
// worker processes. Submitting (function pointers, executor.job, map,
// submit_stored), what is refused before anything runs, JSON round trips of
// user types, remote exceptions, bad payloads, the context a job sees in
// the worker, callbacks in the host, progress, cancel, shutdown, worker
// recycling, time limits and late registrations.
//
// Jobs are registered at namespace scope, before main() starts the fork
// server, so the worker processes (forked from it) know them.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"
#include "support/core_fixtures.hpp"

// ------------------------------------------------------------------ user types

namespace geo {

struct Point {
  int x = 0;
  int y = 0;
  std::string label;
  bool operator==(const Point&) const = default;
};

void to_json(nlohmann::json& j, const Point& p) {
  j = {{"x", p.x}, {"y", p.y}, {"label", p.label}};
}

void from_json(const nlohmann::json& j, Point& p) {
  p.x = j.at("x").get<int>();
  p.y = j.at("y").get<int>();
  p.label = j.at("label").get<std::string>();
}

/// Deserialises only for physically possible values: NaN crosses as JSON
/// null (nlohmann's type_error in from_json), a negative value is refused
/// by from_json's own check.
struct Reading {
  double kelvin = 0;
};

void to_json(nlohmann::json& j, const Reading& r) { j = {{"kelvin", r.kelvin}}; }

void from_json(const nlohmann::json& j, Reading& r) {
  r.kelvin = j.at("kelvin").get<double>();
  if (r.kelvin < 0) {
    throw std::domain_error("a temperature below absolute zero: " + std::to_string(r.kelvin));
  }
}

}  // namespace geo

namespace webexec_test {

/// An exception type with a known, namespaced name.
struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace webexec_test

namespace {

using namespace std::chrono_literals;
using webexec_test::Contains;
using webexec_test::kResultPatience;
using webexec_test::core::TestRequest;

// ------------------------------------------------------------------ jobs

int add(int a, int b) { return a + b; }
WEBEXEC_REGISTER_JOB("exec.add", add);

int subtract(int a, int b) { return a - b; }

int worker_pid() { return static_cast<int>(::getpid()); }
WEBEXEC_REGISTER_JOB("exec.pid", worker_pid);

void touch(std::string path) { webexec_test::write_file_atomically(path, "ran"); }
WEBEXEC_REGISTER_JOB("exec.touch", touch);

geo::Point translate(geo::Point p, geo::Point by) {
  return {p.x + by.x, p.y + by.y, p.label + "+" + by.label};
}
WEBEXEC_REGISTER_JOB("exec.translate", translate);

std::map<std::string, geo::Point> scale_all(std::vector<geo::Point> points, int factor) {
  std::map<std::string, geo::Point> out;
  for (const auto& p : points) out[p.label] = {p.x * factor, p.y * factor, p.label};
  return out;
}
WEBEXEC_REGISTER_JOB("exec.scale_all", scale_all);

double to_celsius(geo::Reading r) { return r.kelvin - 273.15; }
WEBEXEC_REGISTER_JOB("exec.to_celsius", to_celsius);

int fail_with(std::string kind, std::string message) {
  if (kind == "out_of_range") throw std::out_of_range(message);
  if (kind == "quota") throw webexec_test::QuotaExceeded(message);
  if (kind == "int") throw 42;
  return static_cast<int>(::getpid());
}
WEBEXEC_REGISTER_JOB("exec.fail_with", fail_with);

/// Everything of its context a job can see, as JSON.
nlohmann::json describe_context() {
  nlohmann::json out;
  out["pid"] = ::getpid();
  try {
    const webexec::App& app = webexec::current_app();
    out["app"] = app.name();
    out["greeting"] = app.config().get_string("GREETING").value_or("-");
    out["limit"] = app.config().get_int("LIMIT").value_or(-1);
    out["flag"] = app.config().get_bool("FLAG").value_or(false);
    out["type"] = app.config().get_string("EXECUTOR_TYPE").value_or("-");
  } catch (const webexec::ContextError& e) {
    out["app_error"] = e.what();
  }
  out["has_request"] = webexec::has_request_context();
  if (webexec::has_request_context()) {
    const webexec::RequestContext& r = webexec::current_request();
    out["method"] = r.method;
    out["path"] = r.path;
    out["q"] = r.query_param("q").value_or("-");
    out["field"] = r.form_param("field").value_or("-");
    out["header"] = r.header("x-test").value_or("-");
    out["body"] = r.body;
    out["groups"] = r.path_groups;
    out["remote_addr"] = r.remote_addr;
    out["remote_port"] = r.remote_port;
    out["request_id"] = r.request_id;
  } else {
    try {
      static_cast<void>(webexec::current_request());
      out["request_error"] = "none";
    } catch (const webexec::ContextError& e) {
      out["request_error"] = e.what();
    }
  }
  try {
    const webexec::G& g = webexec::g();
    out["g_keys"] = g.keys();
    if (const auto* user = g.get_if<std::string>("user")) out["user"] = *user;
    if (const auto* count = g.get_if<int>("count")) out["count"] = *count;
    if (const auto* admin = g.get_if<bool>("admin")) out["admin"] = *admin;
  } catch (const webexec::ContextError& e) {
    out["g_error"] = e.what();
  }
  return out;
}
WEBEXEC_REGISTER_JOB("exec.describe_context", describe_context);

/// Reports progress, waits for the host's go-ahead (a file), reports again.
std::string staged_work(std::string go_ahead) {
  const bool stored = webexec::report_progress(3, 10, "resizing");
  if (!webexec_test::worker_wait_for_file(go_ahead)) return "gave up waiting";
  webexec::report_progress(1.0, "done");
  return stored ? "resized" : "progress not stored";
}
WEBEXEC_REGISTER_JOB("exec.staged_work", staged_work);

bool report_some_progress() { return webexec::report_progress(0.5, "half"); }
WEBEXEC_REGISTER_JOB("exec.report_some_progress", report_some_progress);

/// Announces its pid in `started`, then blocks until `go_ahead` exists.
int blocker(std::string started, std::string go_ahead) {
  webexec_test::announce_pid(started);
  return webexec_test::worker_wait_for_file(go_ahead) ? 1 : -1;
}
WEBEXEC_REGISTER_JOB("exec.blocker", blocker);

/// A stored job keeping its worker busy: announces its pid in `started`,
/// reports progress once `tick` exists (so the host knows its dispatcher has
/// handled everything submitted before `tick`), returns once `go_ahead`
/// exists.
int ticker(std::string started, std::string tick, std::string go_ahead) {
  webexec_test::announce_pid(started);
  if (!webexec_test::worker_wait_for_file(tick)) return -1;
  webexec::report_progress(0.5, "ticked");
  return webexec_test::worker_wait_for_file(go_ahead) ? 1 : -1;
}
WEBEXEC_REGISTER_JOB("exec.ticker", ticker);

int slow_square(int x, int milliseconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));  // simulated work
  return x * x;
}
WEBEXEC_REGISTER_JOB("exec.slow_square", slow_square);

/// Sleeps `seconds` (simulating a job that hangs), then returns its pid.
int hang(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return static_cast<int>(::getpid());
}
WEBEXEC_REGISTER_JOB("exec.hang", hang);

int square(int x) { return x * x; }
const auto triple = [](int x) { return 3 * x; };

// A namespace-scope executor and its jobs, as an application would write
// them (init_app runs later, in the test).
webexec::Executor jobs_executor("jobs");
const auto square_job = jobs_executor.job("exec.square", square);
const auto triple_job = jobs_executor.job("exec.triple", triple);

/// Not convertible to JSON: a job taking it cannot cross the boundary.
struct Opaque {
  int value = 0;
};
int read_opaque(Opaque o) { return o.value; }

int late_job(int x) { return x + 1; }

// ------------------------------------------------------------------ helpers

/// An app configured for a process executor with `workers` processes.
void configure(webexec::App& app, int workers) {
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", workers);
}

/// The error `future` failed with, rethrown as `E`; fails the test if it
/// succeeded or failed otherwise.
template <typename E, typename F>
std::string error_of(const F& future) {
  try {
    static_cast<void>(future.result(kResultPatience));
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "failed with another error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "the future did not fail";
  return {};
}

/// Lets the ticker job stored under `key` report progress, and waits
/// (bounded) until the host has it: the dispatcher has then handled
/// everything submitted before.
bool wait_for_tick(webexec::Executor& executor, const std::string& key, const std::string& tick) {
  webexec_test::write_file_atomically(tick, "");
  const auto deadline = std::chrono::steady_clock::now() + kResultPatience;
  while (!executor.futures().progress(key)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ------------------------------------------------------------------ registry

/// Where the last `registry.length` call found its argument's bytes.
std::uintptr_t length_saw_bytes_at = 0;

// A worker invokes a job with the arguments it just decoded (an rvalue): a
// string argument is moved into the job, not copied (a 1 MiB payload used
// to be copied once more there); a const one is copied and left intact.
TEST(ProcessExecutorTest, JobRegistryMovesStringArgumentsOutOfAnRvalue) {
  webexec::JobRegistry registry;
  registry.add(
      "registry.length", +[](std::string bytes, nlohmann::json extra) {
        length_saw_bytes_at = reinterpret_cast<std::uintptr_t>(bytes.data());  // NOLINT
        return bytes.size() + extra.size();
      });
  nlohmann::json args = nlohmann::json::array({std::string(100'000, 'x'), {1, 2}});
  const auto original =
      reinterpret_cast<std::uintptr_t>(args[0].get_ref<const std::string&>().data());  // NOLINT
  EXPECT_EQ(registry.invoke("registry.length", std::move(args)), 100'002);
  EXPECT_EQ(length_saw_bytes_at, original) << "the argument was copied, not moved";

  const nlohmann::json kept = nlohmann::json::array({std::string(100'000, 'y'), {1}});
  EXPECT_EQ(registry.invoke("registry.length", kept), 100'001);
  EXPECT_NE(length_saw_bytes_at,
            reinterpret_cast<std::uintptr_t>(kept[0].get_ref<const std::string&>().data()));
  EXPECT_EQ(kept[0], std::string(100'000, 'y'));
  // A wrong type still fails as before.
  EXPECT_THROW(registry.invoke("registry.length", nlohmann::json::array({5, 1})),
               std::invalid_argument);
}

// ------------------------------------------------------------------ submitting

TEST(ProcessExecutorTest, RegisteredFunctionPointerRunsInAWorkerProcess) {
  webexec::App app("submit");
  configure(app, 2);
  webexec::Executor executor(app);
  ASSERT_TRUE(executor.is_process());
  EXPECT_EQ(executor.max_workers(), 2);

  auto sum = executor.submit(add, 20, 22);
  auto pid = executor.submit(worker_pid);
  EXPECT_EQ(sum.result(kResultPatience), 42);
  const int worker = pid.result(kResultPatience);
  EXPECT_NE(worker, ::getpid());
  EXPECT_GT(worker, 0);
  const auto pids = executor.worker_pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), worker), pids.end());
  EXPECT_LE(pids.size(), 2U);
}

TEST(ProcessExecutorTest, IsShutdownFollowsShutdown) {
  webexec::App app("is_shutdown");
  configure(app, 1);
  webexec::Executor executor(app);
  EXPECT_FALSE(executor.is_shutdown());
  executor.shutdown(true);
  EXPECT_TRUE(executor.is_shutdown());
}

TEST(ProcessExecutorTest, VoidJobCompletes) {
  webexec_test::TempDir dir;
  webexec::App app("void");
  configure(app, 1);
  webexec::Executor executor(app);
  auto done = executor.submit(touch, dir.file("touched"));
  done.result(kResultPatience);
  EXPECT_TRUE(done.done());
  EXPECT_TRUE(webexec_test::file_exists(dir.file("touched")));
}

TEST(ProcessExecutorTest, NamespaceScopeJobSubmitsMapsAndStores) {
  webexec::App app("jobs");
  app.config().set("JOBS_EXECUTOR_TYPE", "process");
  app.config().set("JOBS_EXECUTOR_MAX_WORKERS", 2);
  jobs_executor.init_app(app);
  ASSERT_TRUE(jobs_executor.is_process());

  EXPECT_EQ(square_job(9), 81);  // still directly callable, here
  EXPECT_TRUE(jobs_executor.worker_pids().empty());

  EXPECT_EQ(square_job.submit(7).result(kResultPatience), 49);
  EXPECT_EQ(triple_job.submit(7).result(kResultPatience), 21);

  std::vector<int> squares;
  for (int v : square_job.map(std::vector<int>{1, 2, 3, 4, 5}, kResultPatience)) {
    squares.push_back(v);
  }
  EXPECT_EQ(squares, (std::vector<int>{1, 4, 9, 16, 25}));

  auto stored = square_job.submit_stored("sq", 12);
  EXPECT_EQ(stored.result(kResultPatience), 144);
  EXPECT_EQ(jobs_executor.futures().result<int>("sq", kResultPatience), 144);
  const auto status = jobs_executor.futures().status("sq");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["state"], "FINISHED");
  EXPECT_EQ((*status)["result"], 144);

  const auto pids = jobs_executor.worker_pids();
  EXPECT_FALSE(pids.empty());
  for (const pid_t p : pids) EXPECT_NE(p, ::getpid());
}

TEST(ProcessExecutorTest, LocalExecutorWrapsJobsRegisteredAtNamespaceScope) {
  webexec::App app("local");
  configure(app, 1);
  webexec::Executor executor(app);
  // Same names and function types as at namespace scope: the registry keeps
  // the first registration, which the workers know.
  const auto local_square = executor.job("exec.square", square);
  const auto local_triple = executor.job("exec.triple", triple);
  const auto local_add = executor.job("exec.add", add);
  EXPECT_EQ(local_square.submit(5).result(kResultPatience), 25);
  EXPECT_EQ(local_triple.submit(5).result(kResultPatience), 15);
  EXPECT_EQ(local_add.submit(5, 6).result(kResultPatience), 11);

  std::vector<int> sums;
  for (int v : executor.map(add, std::vector<int>{1, 2, 3}, std::vector<int>{10, 20, 30})) {
    sums.push_back(v);
  }
  EXPECT_EQ(sums, (std::vector<int>{11, 22, 33}));

  auto stored = executor.submit_stored("sum", add, 2, 3);
  EXPECT_EQ(stored.result(kResultPatience), 5);
  EXPECT_EQ(executor.futures().result<int>("sum", kResultPatience), 5);
}

TEST(ProcessExecutorTest, LambdasAndUnregisteredCallablesAreRefusedBeforeAnythingRuns) {
  webexec::App app("refuse");
  configure(app, 2);
  webexec::Executor executor(app);
  static std::atomic<int> ran{0};

  std::string message;
  try {
    static_cast<void>(executor.submit([] { return ++ran; }));
    ADD_FAILURE() << "a lambda was accepted";
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  EXPECT_TRUE(Contains(message, "registered"));
  EXPECT_TRUE(Contains(message, "lambda"));

  int captured = 3;  // not const: a const int need not be captured (clang warns)
  EXPECT_THROW(static_cast<void>(executor.submit([captured] { return captured + ++ran; })),
               std::invalid_argument);
  EXPECT_THROW(static_cast<void>(executor.submit(+[] { return ++ran; })), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(executor.submit(subtract, 5, 3)), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(executor.map(subtract, std::vector<int>{1}, std::vector<int>{2})),
               std::invalid_argument);
  EXPECT_THROW(executor.submit_stored("lambda", [] { return ++ran; }), std::invalid_argument);
  EXPECT_THROW(executor.submit_stored("unregistered", subtract, 1, 2), std::invalid_argument);
  EXPECT_FALSE(executor.futures().contains("lambda"));
  EXPECT_FALSE(executor.futures().contains("unregistered"));

  // An unnamed job, and a named one whose argument has no JSON form.
  const auto unnamed = executor.job([](int x) { return x + ++ran; });
  EXPECT_THROW(static_cast<void>(unnamed.submit(1)), std::invalid_argument);
  const auto opaque = executor.job("exec.opaque", read_opaque);
  EXPECT_FALSE(webexec::JobRegistry::global().contains("exec.opaque"));
  try {
    static_cast<void>(opaque.submit(Opaque{4}));
    ADD_FAILURE() << "a job without a JSON form was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(Contains(e.what(), "exec.opaque"));
    EXPECT_TRUE(Contains(e.what(), "JSON"));
  }

  EXPECT_TRUE(executor.worker_pids().empty()) << "a worker process was started";
  EXPECT_EQ(ran.load(), 0);
  EXPECT_TRUE(executor.futures().keys().empty());
}

TEST(ProcessExecutorTest, UserTypesRoundTripAsArgumentsAndResults) {
  webexec::App app("types");
  configure(app, 1);
  webexec::Executor executor(app);

  const geo::Point moved =
      executor
          .submit(translate, geo::Point{1, 2, "caf\xc3\xa9"}, geo::Point{10, -20, "\xe2\x98\x95"})
          .result(kResultPatience);
  EXPECT_EQ(moved, (geo::Point{11, -18, "caf\xc3\xa9+\xe2\x98\x95"}));

  const std::vector<geo::Point> points = {{1, 1, "a"}, {2, 3, "b"}, {-4, 0, "c"}};
  const auto scaled = executor.submit(scale_all, points, 3).result(kResultPatience);
  const std::map<std::string, geo::Point> expected = {
      {"a", {3, 3, "a"}}, {"b", {6, 9, "b"}}, {"c", {-12, 0, "c"}}};
  EXPECT_EQ(scaled, expected);
}

// ------------------------------------------------------------------ errors from jobs

TEST(ProcessExecutorTest, JobExceptionComesBackAsRemoteTaskErrorWithTypeAndMessage) {
  webexec::App app("errors");
  configure(app, 1);
  webexec::Executor executor(app);
  const int before = executor.submit(worker_pid).result(kResultPatience);

  auto out_of_range = executor.submit(fail_with, std::string("out_of_range"), std::string("no #7"));
  try {
    static_cast<void>(out_of_range.result(kResultPatience));
    ADD_FAILURE() << "no exception";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_EQ(e.type(), "std::out_of_range");
    EXPECT_EQ(e.message(), "no #7");
    EXPECT_EQ(std::string(e.what()), "std::out_of_range: no #7");
  }
  const std::exception_ptr error = out_of_range.exception(kResultPatience);
  ASSERT_NE(error, nullptr);
  EXPECT_THROW(std::rethrow_exception(error), webexec::RemoteTaskError);

  auto quota = executor.submit(fail_with, std::string("quota"), std::string("over 10 GB"));
  try {
    static_cast<void>(quota.result(kResultPatience));
    ADD_FAILURE() << "no exception";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_EQ(e.type(), "webexec_test::QuotaExceeded");
    EXPECT_EQ(e.message(), "over 10 GB");
  }

  auto not_an_exception = executor.submit(fail_with, std::string("int"), std::string());
  try {
    static_cast<void>(not_an_exception.result(kResultPatience));
    ADD_FAILURE() << "no exception";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_EQ(e.type(), "int");
  }

  // An exception is an answer, not a crash: the same worker serves on.
  EXPECT_EQ(executor.submit(worker_pid).result(kResultPatience), before);
}

TEST(ProcessExecutorTest, ArgumentThatDoesNotDeserializeFailsOnlyThatFuture) {
  webexec::App app("payload");
  configure(app, 1);
  webexec::Executor executor(app);
  const int before = executor.submit(worker_pid).result(kResultPatience);

  auto good1 = executor.submit(to_celsius, geo::Reading{273.15});
  // Below absolute zero: the user's from_json refuses it in the worker.
  auto bad = executor.submit(to_celsius, geo::Reading{-1.0});
  auto good2 = executor.submit(to_celsius, geo::Reading{300.0});
  // The wire is CBOR (Step 4): NaN crosses as NaN, where JSON had null.
  auto nan = executor.submit(to_celsius, geo::Reading{std::numeric_limits<double>::quiet_NaN()});

  const std::string message = error_of<webexec::RemoteTaskError>(bad);
  EXPECT_TRUE(Contains(message, "argument 1"));
  EXPECT_TRUE(Contains(message, "exec.to_celsius"));
  EXPECT_NEAR(good1.result(kResultPatience), 0.0, 1e-9);
  EXPECT_NEAR(good2.result(kResultPatience), 26.85, 1e-9);
  EXPECT_TRUE(std::isnan(nan.result(kResultPatience)));
  EXPECT_EQ(executor.submit(worker_pid).result(kResultPatience), before);
}

/// EXECUTOR_PROPAGATE_EXCEPTIONS=true (issue 8 item 9): a process job's
/// exception reaches the app's error handler as a thread task's does, with
/// the executor's name, the key or job name, and the exception's type and
/// message.
TEST(ProcessExecutorTest, PropagatedExceptionsReachTheAppsErrorHandler) {
  webexec::App app("propagate");
  app.config().set("PROCS_EXECUTOR_MAX_WORKERS", 1);
  app.config().set("PROCS_EXECUTOR_PROPAGATE_EXCEPTIONS", true);
  app.config().set("PROCS_EXECUTOR_TYPE", "process");
  std::mutex mutex;
  std::vector<webexec::ErrorReport> reports;
  std::promise<void> two;
  app.set_error_handler([&](const webexec::ErrorReport& r) {
    const std::lock_guard lock(mutex);
    reports.push_back(r);
    if (reports.size() == 2) two.set_value();
  });
  webexec::Executor executor(app, "procs");
  auto plain = executor.submit(fail_with, std::string("out_of_range"), std::string("too far"));
  auto stored = executor.submit_stored("k-7", fail_with, std::string("quota"), std::string("q"));
  EXPECT_THROW(static_cast<void>(plain.result(kResultPatience)), webexec::RemoteTaskError);
  EXPECT_THROW(static_cast<void>(stored.result(kResultPatience)), webexec::RemoteTaskError);
  ASSERT_EQ(two.get_future().wait_for(kResultPatience), std::future_status::ready);
  const std::lock_guard lock(mutex);
  ASSERT_EQ(reports.size(), 2U);
  std::map<std::string, webexec::ErrorReport> by_key;
  for (const auto& r : reports) by_key[r.key] = r;
  ASSERT_EQ(by_key.count("exec.fail_with"), 1U);
  ASSERT_EQ(by_key.count("k-7"), 1U);
  for (const auto& [key, r] : by_key) {
    EXPECT_EQ(r.origin, "task") << key;
    EXPECT_EQ(r.executor, "procs") << key;
    EXPECT_NE(r.exception, nullptr) << key;
  }
  EXPECT_TRUE(Contains(by_key["exec.fail_with"].message, "std::out_of_range: too far"));
  EXPECT_TRUE(Contains(by_key["k-7"].message, "QuotaExceeded: q"));
}

TEST(ProcessExecutorTest, ArgumentRefusedByUserFromJsonNamesTheArgument) {
  webexec::App app("payload");
  configure(app, 1);
  webexec::Executor executor(app);
  const int before = executor.submit(worker_pid).result(kResultPatience);

  auto bad = executor.submit(to_celsius, geo::Reading{-5.0});
  auto good = executor.submit(to_celsius, geo::Reading{373.15});
  const std::string message = error_of<webexec::RemoteTaskError>(bad);
  EXPECT_TRUE(Contains(message, "below absolute zero"));  // the user's reason
  EXPECT_TRUE(Contains(message, "argument 1"));           // which argument
  EXPECT_TRUE(Contains(message, "exec.to_celsius"));      // of which job
  EXPECT_NEAR(good.result(kResultPatience), 100.0, 1e-9);
  EXPECT_EQ(executor.submit(worker_pid).result(kResultPatience), before);
}

// ------------------------------------------------------------------ context

TEST(ProcessExecutorTest, AppConfigRequestAndGReachTheWorker) {
  webexec::App app("context-app");
  configure(app, 1);
  app.config().set("GREETING", "hello");
  app.config().set("LIMIT", 7);
  app.config().set("FLAG", true);
  webexec::Executor executor(app);

  TestRequest request(&app, "/items/7");
  nlohmann::json seen;
  {
    const webexec::detail::ScopedRequest scope(&request);
    request.g().set("user", std::string("alice"));
    request.g().set("count", 3);
    request.g().set("admin", true);
    request.g().set("opaque", Opaque{5});  // no JSON form: stays behind
    seen = executor.submit(describe_context).result(kResultPatience);
  }

  EXPECT_NE(seen["pid"], ::getpid());
  EXPECT_EQ(seen["app"], "context-app");
  EXPECT_EQ(seen["greeting"], "hello");
  EXPECT_EQ(seen["limit"], 7);
  EXPECT_EQ(seen["flag"], true);
  EXPECT_EQ(seen["type"], "process");

  EXPECT_EQ(seen["has_request"], true);
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/items/7");
  EXPECT_EQ(seen["q"], "search term");
  EXPECT_EQ(seen["field"], "value");
  EXPECT_EQ(seen["header"], "yes");
  EXPECT_EQ(seen["body"], "the body \xe2\x98\x95");
  EXPECT_EQ(seen["groups"], nlohmann::json(std::vector<std::string>{"/items/7", "7"}));
  EXPECT_EQ(seen["remote_addr"], "127.0.0.1");
  EXPECT_EQ(seen["remote_port"], 54321);
  EXPECT_EQ(seen["request_id"], "req-/items/7");

  EXPECT_EQ(seen["user"], "alice");
  EXPECT_EQ(seen["count"], 3);
  EXPECT_EQ(seen["admin"], true);
  EXPECT_EQ(seen["g_keys"], nlohmann::json(std::vector<std::string>{"admin", "count", "user"}))
      << "the non-serializable g value must simply be absent";
  EXPECT_FALSE(seen.contains("g_error")) << seen.dump();
}

TEST(ProcessExecutorTest, OutsideARequestTheWorkerHasTheAppButNoRequest) {
  webexec::App app("startup");
  configure(app, 1);
  webexec::Executor executor(app);
  nlohmann::json seen = executor.submit(describe_context).result(kResultPatience);
  EXPECT_EQ(seen["app"], "startup");
  EXPECT_EQ(seen["has_request"], false);
  EXPECT_NE(seen["request_error"], "none");  // current_request() threw ContextError
  EXPECT_EQ(seen["g_keys"], nlohmann::json::array());
}

TEST(ProcessExecutorTest, WithoutTheAppContextTheWorkerSaysWhy) {
  webexec::App app("no-app");
  configure(app, 1);
  app.config().set("EXECUTOR_PUSH_APP_CONTEXT", false);
  webexec::Executor executor(app);
  nlohmann::json seen = executor.submit(describe_context).result(kResultPatience);
  EXPECT_FALSE(seen.contains("app")) << seen.dump();
  ASSERT_TRUE(seen.contains("app_error")) << seen.dump();
  EXPECT_TRUE(Contains(seen["app_error"].get<std::string>(), "EXECUTOR_PUSH_APP_CONTEXT"));
}

// ------------------------------------------------------------------ callbacks

struct Observation {
  pid_t pid = -1;
  std::thread::id thread;
  const webexec::App* app = nullptr;
  std::string path;
  std::string user;
  std::string error;
};

Observation observe() {
  Observation o;
  o.pid = ::getpid();
  o.thread = std::this_thread::get_id();
  try {
    o.app = &webexec::current_app();
    o.path = webexec::current_request().path;
    o.user = webexec::g().get<std::string>("user");
  } catch (const std::exception& e) {
    o.error = e.what();
  }
  return o;
}

TEST(ProcessExecutorTest, DoneCallbacksRunInTheHostInsideTheCapturedContext) {
  webexec_test::TempDir dir;
  webexec::App app("callbacks");
  configure(app, 1);
  webexec::Executor executor(app);

  std::promise<Observation> by_default;
  std::promise<Observation> added;
  executor.add_default_done_callback(
      [&](const webexec::AnyFuture& /*future*/) { by_default.set_value(observe()); });

  webexec::Future<int> future;
  {
    TestRequest request(&app, "/callbacks");
    const webexec::detail::ScopedRequest scope(&request);
    request.g().set("user", std::string("carol"));
    future = executor.submit(blocker, dir.file("started"), dir.file("go"));
    future.add_done_callback(
        [&](const webexec::Future<int>& /*future*/) { added.set_value(observe()); });
  }
  // The job finishes only now, after the request is over.
  webexec_test::write_file_atomically(dir.file("go"), "");
  EXPECT_EQ(future.result(kResultPatience), 1);
  const pid_t worker = webexec_test::announced_pid(dir.file("started"));
  EXPECT_NE(worker, ::getpid());

  auto default_seen = by_default.get_future();
  auto added_seen = added.get_future();
  ASSERT_EQ(default_seen.wait_for(kResultPatience), std::future_status::ready);
  ASSERT_EQ(added_seen.wait_for(kResultPatience), std::future_status::ready);
  for (const Observation& o : {default_seen.get(), added_seen.get()}) {
    EXPECT_EQ(o.error, "");
    EXPECT_EQ(o.pid, ::getpid());  // the host process, not the worker
    EXPECT_NE(o.thread, std::this_thread::get_id());
    EXPECT_EQ(o.app, &app);
    EXPECT_EQ(o.path, "/callbacks");
    EXPECT_EQ(o.user, "carol");
  }
}

// ------------------------------------------------------------------ progress

TEST(ProcessExecutorTest, ProgressOfAStoredJobIsVisibleWhileItRuns) {
  webexec_test::TempDir dir;
  webexec::App app("progress");
  configure(app, 1);
  webexec::Executor executor(app);
  auto future = executor.submit_stored("resize", staged_work, dir.file("go"));

  // The worker reports from another process: wait (bounded) until it arrives.
  const auto deadline = std::chrono::steady_clock::now() + kResultPatience;
  std::optional<webexec::Progress> progress;
  while (!(progress = executor.futures().progress("resize")) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(progress.has_value()) << "no progress arrived";
  EXPECT_EQ(progress->done, 3);
  EXPECT_EQ(progress->total, 10);
  EXPECT_DOUBLE_EQ(progress->fraction, 0.3);
  EXPECT_EQ(progress->message, "resizing");
  EXPECT_FALSE(future.done());
  const auto running = executor.futures().status("resize");
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ((*running)["state"], "RUNNING");
  EXPECT_EQ((*running)["progress"]["done"], 3);
  EXPECT_EQ((*running)["progress"]["total"], 10);
  EXPECT_EQ((*running)["progress"]["message"], "resizing");

  webexec_test::write_file_atomically(dir.file("go"), "");
  EXPECT_EQ(future.result(kResultPatience), "resized");
  // The last report travels before the result: it is there once done.
  const auto last = executor.futures().progress("resize");
  ASSERT_TRUE(last.has_value());
  EXPECT_DOUBLE_EQ(last->fraction, 1.0);
  EXPECT_EQ(last->message, "done");
  const auto finished = executor.futures().status("resize");
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ((*finished)["state"], "FINISHED");
  EXPECT_EQ((*finished)["result"], "resized");
}

TEST(ProcessExecutorTest, ReportProgressOutsideAStoredJobReturnsFalse) {
  // context.hpp: report_progress "returns false (and does nothing) if the
  // running task is not stored" - in a worker process too.
  webexec::App app("progress");
  configure(app, 1);
  webexec::Executor executor(app);
  EXPECT_FALSE(executor.submit(report_some_progress).result(kResultPatience));
  auto stored = executor.submit_stored("half", report_some_progress);
  EXPECT_TRUE(stored.result(kResultPatience));
  ASSERT_TRUE(executor.futures().progress("half").has_value());
  EXPECT_DOUBLE_EQ(executor.futures().progress("half")->fraction, 0.5);
}

// ------------------------------------------------------------------ cancel and shutdown

TEST(ProcessExecutorTest, CancelOfAPendingJobPreventsItFromRunning) {
  webexec_test::TempDir dir;
  webexec::App app("cancel");
  configure(app, 1);
  webexec::Executor executor(app);
  auto busy =
      executor.submit_stored("busy", ticker, dir.file("started"), dir.file("tick"), dir.file("go"));
  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("started")));

  // The only worker is busy: these wait their turn, as with the thread type.
  std::vector<webexec::Future<void>> pending;
  for (int i = 0; i < 4; ++i) {
    pending.push_back(executor.submit(touch, dir.file("pending-" + std::to_string(i))));
  }
  ASSERT_TRUE(wait_for_tick(executor, "busy", dir.file("tick")));
  std::vector<bool> cancelled;
  for (auto& f : pending) {
    EXPECT_FALSE(f.running());
    cancelled.push_back(f.cancel());
  }

  webexec_test::write_file_atomically(dir.file("go"), "");
  EXPECT_EQ(busy.result(kResultPatience), 1);
  // A later job on the same worker runs after where the cancelled ones were.
  executor.submit(touch, dir.file("later")).result(kResultPatience);
  EXPECT_TRUE(webexec_test::file_exists(dir.file("later")));
  for (std::size_t i = 0; i < pending.size(); ++i) {
    EXPECT_TRUE(cancelled[i]) << "cancel() of pending job " << i << " returned false";
    EXPECT_TRUE(pending[i].cancelled()) << i << " is " << to_string(pending[i].state());
    EXPECT_THROW(pending[i].result(kResultPatience), webexec::CancelledError);
    EXPECT_FALSE(webexec_test::file_exists(dir.file("pending-" + std::to_string(i))))
        << "cancelled job " << i << " ran anyway";
  }
}

TEST(ProcessExecutorTest, ShutdownWithWaitRunsEveryQueuedJob) {
  webexec::App app("drain");
  configure(app, 1);
  webexec::Executor executor(app);
  std::vector<webexec::Future<int>> futures;
  for (int i = 0; i < 8; ++i) futures.push_back(executor.submit(slow_square, i, 20));
  executor.shutdown(/*wait=*/true);
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_TRUE(futures[i].done()) << i;  // done when shutdown returns
    EXPECT_EQ(futures[i].result(), static_cast<int>(i * i));
  }
  EXPECT_TRUE(executor.worker_pids().empty());
}

TEST(ProcessExecutorTest, ShutdownWithCancelFuturesCancelsQueuedJobs) {
  webexec_test::TempDir dir;
  webexec::App app("cancel-all");
  configure(app, 1);
  webexec::Executor executor(app);
  auto busy =
      executor.submit_stored("busy", ticker, dir.file("started"), dir.file("tick"), dir.file("go"));
  ASSERT_TRUE(webexec_test::wait_for_file(dir.file("started")));
  std::vector<webexec::Future<void>> queued;
  for (int i = 0; i < 5; ++i) {
    queued.push_back(executor.submit(touch, dir.file("queued-" + std::to_string(i))));
  }
  ASSERT_TRUE(wait_for_tick(executor, "busy", dir.file("tick")));

  executor.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  webexec_test::write_file_atomically(dir.file("go"), "");
  EXPECT_EQ(busy.result(kResultPatience), 1);  // the running job finishes
  executor.shutdown(/*wait=*/true);
  for (std::size_t i = 0; i < queued.size(); ++i) {
    EXPECT_TRUE(queued[i].cancelled())
        << "queued job " << i << " is " << to_string(queued[i].state());
    EXPECT_FALSE(webexec_test::file_exists(dir.file("queued-" + std::to_string(i))))
        << "queued job " << i << " ran";
  }
}

TEST(ProcessExecutorTest, SubmitAfterShutdownThrowsShutdownError) {
  webexec::App app("closed");
  configure(app, 1);
  webexec::Executor executor(app);
  const auto job = executor.job("exec.add", add);
  EXPECT_EQ(executor.submit(add, 1, 1).result(kResultPatience), 2);
  executor.shutdown();
  EXPECT_THROW(static_cast<void>(executor.submit(add, 1, 2)), webexec::ShutdownError);
  EXPECT_THROW(static_cast<void>(job.submit(1, 2)), webexec::ShutdownError);
  EXPECT_THROW(static_cast<void>(executor.map(add, std::vector<int>{1}, std::vector<int>{2})),
               webexec::ShutdownError);
  EXPECT_THROW(executor.submit_stored("late", add, 1, 2), webexec::ShutdownError);
  EXPECT_FALSE(executor.futures().contains("late"));
  EXPECT_TRUE(executor.worker_pids().empty());
}

// ------------------------------------------------------------------ recycling

TEST(ProcessExecutorTest, MaxTasksPerChildRecyclesWorkers) {
  webexec::App app("recycle");
  configure(app, 1);
  app.config().set("EXECUTOR_MAX_TASKS_PER_CHILD", 2);
  webexec::Executor executor(app);

  std::vector<int> sequential;
  for (int i = 0; i < 6; ++i)
    sequential.push_back(executor.submit(worker_pid).result(kResultPatience));
  std::map<int, int> uses;
  for (const int pid : sequential) ++uses[pid];
  EXPECT_GE(uses.size(), 3U);
  for (const auto& [pid, count] : uses) EXPECT_LE(count, 2) << "worker " << pid;

  // Submitted at once, too: no worker runs more than two.
  std::vector<webexec::Future<int>> batch;
  for (int i = 0; i < 6; ++i) batch.push_back(executor.submit(worker_pid));
  std::map<int, int> batch_uses;
  for (auto& f : batch) ++batch_uses[f.result(kResultPatience)];
  EXPECT_GE(batch_uses.size(), 3U);
  for (const auto& [pid, count] : batch_uses) EXPECT_LE(count, 2) << "worker " << pid;

  // Retired workers are gone, not zombies.
  std::set<pid_t> retired;
  for (const auto& [pid, count] : uses) retired.insert(pid);
  EXPECT_EQ(webexec_test::lingering(retired), "");
}

// ------------------------------------------------------------------ time limits

TEST(ProcessExecutorTest, TaskTimeoutFromConfigKillsTheJobAndThePoolHeals) {
  webexec::App app("limits");
  configure(app, 1);
  app.config().set("EXECUTOR_TASK_TIMEOUT", "1.5");  // seconds, decimals allowed
  webexec::Executor executor(app);
  const int first = executor.submit(worker_pid).result(kResultPatience);

  const auto start = std::chrono::steady_clock::now();
  auto late = executor.submit(hang, 60);
  const std::string message = error_of<webexec::TimeoutError>(late);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(late.done());  // the job's failure, not result()'s own timeout
  EXPECT_TRUE(Contains(message, "exec.hang"));
  EXPECT_TRUE(Contains(message, "time limit"));
  EXPECT_TRUE(Contains(message, "1.5"));
  EXPECT_TRUE(Contains(message, std::to_string(first)));
  EXPECT_GE(elapsed, 1400ms);
  EXPECT_LT(elapsed, 30s);

  EXPECT_EQ(webexec_test::lingering({first}), "");
  const int next = executor.submit(worker_pid).result(kResultPatience);
  EXPECT_NE(next, first);
  EXPECT_EQ(executor.submit(add, 2, 2).result(kResultPatience), 4);
}

TEST(ProcessExecutorTest, TimeLimitCountsFromWhenTheJobStarts) {
  // One worker, busy for ~1 s: the limited job waits that long behind it,
  // but its 700 ms limit is for running, not for waiting its turn.
  webexec::App app("limits");
  configure(app, 1);
  webexec::Executor executor(app);
  const auto limited = executor.job("exec.slow_square", slow_square).with_timeout(700ms);
  auto slow = executor.submit(slow_square, 3, 1000);
  auto quick = limited.submit(4, 0);
  auto quick2 = limited.submit(5, 0);
  EXPECT_EQ(slow.result(kResultPatience), 9);
  EXPECT_EQ(quick.result(kResultPatience), 16);
  EXPECT_EQ(quick2.result(kResultPatience), 25);
}

TEST(ProcessExecutorTest, WithTimeoutLimitsOneSubmissionAndOverridesTheConfig) {
  webexec::App app("limits");
  configure(app, 1);
  app.config().set("EXECUTOR_TASK_TIMEOUT", 40);
  webexec::Executor executor(app);
  const auto job = executor.job("exec.hang", hang);
  const int first = job.submit(0).result(kResultPatience);

  const auto start = std::chrono::steady_clock::now();
  auto late = job.with_timeout(300ms).submit(60);
  const std::string message = error_of<webexec::TimeoutError>(late);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);  // not the config's 40 s
  EXPECT_TRUE(late.done());
  EXPECT_TRUE(Contains(message, "exec.hang"));
  EXPECT_TRUE(Contains(message, "0.3"));
  EXPECT_TRUE(Contains(message, std::to_string(first)));
  EXPECT_EQ(webexec_test::lingering({first}), "");

  // Within its limit a job just runs; the pool has healed.
  const int next = job.with_timeout(30s).submit(0).result(kResultPatience);
  EXPECT_NE(next, first);
  EXPECT_EQ(executor.submit(add, 3, 4).result(kResultPatience), 7);
}

// ------------------------------------------------------------------ registration

TEST(ProcessExecutorTest, JobRegisteredAfterTheForkServerStartedIsRefused) {
  webexec::App app("late");
  configure(app, 1);
  webexec::Executor executor(app);
  const auto job = executor.job("exec.late", late_job);  // registered now: too late
  ASSERT_TRUE(webexec::JobRegistry::global().contains("exec.late"));
  try {
    static_cast<void>(job.submit(1));
    ADD_FAILURE() << "a job unknown to the workers was accepted";
  } catch (const webexec::InvalidStateError& e) {
    EXPECT_TRUE(Contains(e.what(), "exec.late"));
    EXPECT_TRUE(Contains(e.what(), "fork server"));
  }
  EXPECT_THROW(static_cast<void>(executor.submit(late_job, 1)), webexec::InvalidStateError);
  EXPECT_TRUE(executor.worker_pids().empty());
  EXPECT_EQ(job(1), 2);  // still callable here
  EXPECT_EQ(executor.submit(add, 1, 2).result(kResultPatience), 3);
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
