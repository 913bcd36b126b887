// Test support for the core tests (tests/core/): a test exception, a gate that holds
// tasks until the test opens it, futures in every state, error-handler capture, and
// small helpers for exception messages and thread names. Each test file is its own
// executable, so everything here is a class, a template or an inline function.
//
// Example:
//
//   #include "support/core_fixtures.hpp"
//
//   using webexec_test::core::Gate;
//
//   TEST(ThreadPoolExecutorTest, Something) {
//     webexec::ThreadPoolExecutor pool(1);
//     Gate gate;  // after the pool
//     auto f = pool.submit([w = gate.waiter()] { w.wait(); return 1; });
//     gate.open();
//     EXPECT_EQ(f.result(), 1);
//   }
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/context.hpp"
#include "webexec/future.hpp"

// Not webexec_test itself: support/http_server.hpp has a different Gate there.
namespace webexec_test::core {

/// The exception test tasks throw (and the "failed" fixture future holds; CPython's
/// fixture uses OSError).
class TestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A request being handled, as a web adapter would make one: every field of
/// the snapshot is set (from `path`), and builds() counts how often the
/// snapshot was built.
class TestRequest : public webexec::detail::RequestScope {
 public:
  TestRequest(webexec::App* app, std::string path) : RequestScope(app), path_(std::move(path)) {}

  [[nodiscard]] int builds() const { return builds_.load(); }

 protected:
  [[nodiscard]] std::shared_ptr<const webexec::RequestContext> build_snapshot() const override {
    builds_.fetch_add(1);
    auto snapshot = std::make_shared<webexec::RequestContext>();
    snapshot->method = "POST";
    snapshot->path = path_;
    snapshot->query = {{"q", "search term"}, {"page", "2"}};
    snapshot->form = {{"field", "value"}};
    snapshot->headers = {{"X-Test", "yes"}, {"Content-Type", "text/plain"}};
    snapshot->body = "the body \xe2\x98\x95";
    snapshot->path_groups = {path_, "7"};
    snapshot->remote_addr = "127.0.0.1";
    snapshot->remote_port = 54321;
    snapshot->request_id = "req-" + path_;
    return snapshot;
  }

 private:
  std::string path_;
  mutable std::atomic<int> builds_{0};
};

/// Tasks wait on a copy of waiter() until the test opens the gate. Declare it after
/// the pool or executor: if the test leaves early, the unset promise breaks, which
/// releases the waiters, so the pool's destructor cannot wait for ever.
class Gate {
 public:
  void open() { promise_.set_value(); }
  [[nodiscard]] std::shared_future<void> waiter() const { return opened_; }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_ = promise_.get_future().share();
};

/// Submits to `pool` a task that holds its worker until `gate` opens, then
/// returns `value` (or nothing), and returns the task's future once the task
/// is running.
template <typename Pool, typename... Value>
auto submit_blocker(Pool& pool, const Gate& gate, Value... value) {
  static_assert(sizeof...(Value) <= 1, "at most one value");
  // Shared with the task: count_down() may still touch the latch after wait() returns.
  auto started = std::make_shared<std::latch>(1);
  auto future = pool.submit([started, w = gate.waiter(), value...] {
    started->count_down();
    w.wait();
    return (value, ...);
  });
  started->wait();
  return future;
}

/// One future in each state, like CPython's PENDING_FUTURE, RUNNING_FUTURE,
/// CANCELLED_FUTURE, EXCEPTION_FUTURE and SUCCESSFUL_FUTURE fixtures. The promises
/// stay alive as long as the fixture, so nothing breaks early.
struct StateFixtures {
  StateFixtures() {
    EXPECT_TRUE(running_promise.set_running_or_notify_cancel());
    EXPECT_TRUE(cancelled.cancel());
    failed_promise.set_exception(std::make_exception_ptr(TestError("fixture failure")));
    successful_promise.set_result(42);
  }

  webexec::Promise<int> pending_promise;
  webexec::Promise<int> running_promise;
  webexec::Promise<int> cancelled_promise;
  webexec::Promise<int> failed_promise;
  webexec::Promise<int> successful_promise;
  webexec::Future<int> pending = pending_promise.future();
  webexec::Future<int> running = running_promise.future();
  webexec::Future<int> cancelled = cancelled_promise.future();
  webexec::Future<int> failed = failed_promise.future();
  webexec::Future<int> successful = successful_promise.future();
};

/// The message of an exception_ptr's exception, "" if null or not a std::exception.
inline std::string what_of(const std::exception_ptr& error) {
  if (!error) return {};
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return {};
  }
}

/// Calls `fn` and returns the what() of the `E` it throws; fails if it throws nothing.
template <typename E, typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

/// Installs a webexec error handler for one test and restores the previous one.
class ScopedErrorHandler {
 public:
  explicit ScopedErrorHandler(webexec::ErrorHandler handler)
      : previous_(webexec::set_error_handler(std::move(handler))) {}
  ScopedErrorHandler(const ScopedErrorHandler&) = delete;
  ScopedErrorHandler& operator=(const ScopedErrorHandler&) = delete;
  ~ScopedErrorHandler() { webexec::set_error_handler(std::move(previous_)); }

 private:
  webexec::ErrorHandler previous_;
};

/// Records every report of a webexec error handler as "where: what" (thread-safe:
/// reports come from worker threads).
class ErrorLog {
 public:
  webexec::ErrorHandler handler() {
    return [this](const char* where, const std::exception_ptr& error) {
      const std::lock_guard lock(mutex_);
      reports_.push_back(std::string(where) + ": " + what_of(error));
    };
  }
  std::vector<std::string> reports() {
    const std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> reports_;
};

/// Whether `text` contains `part` (for EXPECT_TRUE on error messages).
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Sets an environment variable for one test and unsets it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }

 private:
  std::string name_;
};

/// How many of this process's threads have a /proc comm name starting with `prefix`.
inline std::size_t threads_named(const std::string& prefix) {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name.starts_with(prefix)) ++count;
  }
  return count;
}

}  // namespace webexec_test::core
