// Submits when no thread can be started (issue 9, item 8): no user callback
// runs under a library lock.
//
// This binary interposes pthread_create: while `fail_thread_start` is set,
// starting a thread fails with EAGAIN, as it does at RLIMIT_NPROC. A submit
// that finds no thread and can start none cancels its task, and the
// cancellation runs the task's default done callbacks inline, inside submit.
// The callbacks below ask a helper thread (started beforehand) to use the
// library, and wait a bounded time for it: if submit still held a lock the
// helper needs, the helper would block until the callback returned.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"

namespace {

/// While true, pthread_create fails with EAGAIN.
std::atomic<bool> fail_thread_start{false};

}  // namespace

// Interposes libc's pthread_create (std::thread calls it); forwards to the
// next definition (libc's, or a sanitizer's interceptor) unless failing.
extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                              void* arg) {
  if (fail_thread_start.load()) return EAGAIN;
  using Real = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const auto real =
      reinterpret_cast<Real>(dlsym(RTLD_NEXT, "pthread_create"));  // NOLINT: dlsym's type
  return real(thread, attr, start, arg);
}

namespace {

using namespace std::chrono_literals;

/// How long a callback waits for the helper; the helper needs microseconds
/// unless a lock it needs is held.
constexpr auto kHelperPatience = 2s;

/// A thread, started before thread creation fails, that runs one job at a
/// time for a callback.
class Helper {
 public:
  Helper() : thread_([this] { loop(); }) {}
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;
  ~Helper() {
    run_async({});
    thread_.join();
  }

  /// Runs `job` on the helper; true if it finished within kHelperPatience.
  bool run(std::function<void()> job) {
    return run_async(std::move(job)).wait_for(kHelperPatience) == std::future_status::ready;
  }

 private:
  std::shared_future<void> run_async(std::function<void()> job) {
    auto done = std::make_shared<std::promise<void>>();
    std::shared_future<void> out = done->get_future().share();
    {
      const std::lock_guard lock(mutex_);
      jobs_.emplace_back(std::move(job), std::move(done));
    }
    cv_.notify_one();
    return out;
  }

  void loop() {
    for (;;) {
      std::pair<std::function<void()>, std::shared_ptr<std::promise<void>>> next;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !jobs_.empty(); });
        next = std::move(jobs_.front());
        jobs_.erase(jobs_.begin());
      }
      if (!next.first) {
        next.second->set_value();
        return;
      }
      next.first();
      next.second->set_value();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::function<void()>, std::shared_ptr<std::promise<void>>>> jobs_;
  std::thread thread_;
};

/// Fails thread creation for its lifetime.
class FailingThreadStart {
 public:
  FailingThreadStart() noexcept { fail_thread_start = true; }
  FailingThreadStart(const FailingThreadStart&) = delete;
  FailingThreadStart& operator=(const FailingThreadStart&) = delete;
  ~FailingThreadStart() { fail_thread_start = false; }
};

TEST(ThreadStartFailureTest, StrandedSubmitStoredRunsDefaultCallbacksOutsideTheCollectionLock) {
  Helper helper;
  webexec::App app("no-threads");
  webexec::Executor executor(app);  // threads start lazily: none yet
  std::atomic<int> callbacks{0};
  std::atomic<bool> collection_free{false};
  executor.add_default_done_callback([&](const webexec::AnyFuture& f) {
    if (!f.cancelled()) return;  // the submit at the end
    callbacks.fetch_add(1);
    collection_free = helper.run([&] { static_cast<void>(executor.futures().size()); });
  });
  {
    const FailingThreadStart fail;
    EXPECT_THROW(static_cast<void>(executor.submit_stored("job", [] { return 1; })),
                 std::system_error);
  }
  EXPECT_EQ(callbacks.load(), 1);
  EXPECT_TRUE(collection_free) << "the default done callback ran under the collection's lock";
  EXPECT_FALSE(executor.futures().contains("job")) << "a refused submit stored its future";
  // Threads start again: the executor works, and the key is free.
  EXPECT_EQ(executor.submit_stored("job", [] { return 2; }).result(), 2);
}

TEST(ThreadStartFailureTest, StrandedSubmitRunsDefaultCallbacksOutsideThePoolsGate) {
  // A callback may shut the executor down; shutdown waits for submits in
  // flight, so the cancelling submit must have left the pool by then.
  Helper helper;
  webexec::App app("no-threads");
  webexec::Executor executor(app);
  std::atomic<bool> shutdown_returned{false};
  executor.add_default_done_callback([&](const webexec::AnyFuture&) {
    shutdown_returned = helper.run([&] { executor.shutdown(false); });
  });
  {
    const FailingThreadStart fail;
    EXPECT_THROW(static_cast<void>(executor.submit([] { return 1; })), std::system_error);
  }
  EXPECT_TRUE(shutdown_returned) << "the default done callback ran while submit was in flight";
}

}  // namespace
