// Future<T>, AnyFuture and Promise<T>: the semantics of CPython's
// Lib/test/test_concurrent_futures/test_future.py, ported to webexec's typed
// futures, plus the C++-only parts (typed access, empty handles, BrokenPromise).
#include "webexec/future.hpp"

#include <chrono>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec::FutureState;
using webexec_test::core::ErrorLog;
using webexec_test::core::ScopedErrorHandler;
using webexec_test::core::StateFixtures;
using webexec_test::core::TestError;
using webexec_test::core::what_of;

// --- states ------------------------------------------------------------------------------

TEST(FutureTest, StateQueriesInEachState) {
  StateFixtures fx;

  EXPECT_EQ(fx.pending.state(), FutureState::pending);
  EXPECT_FALSE(fx.pending.cancelled());
  EXPECT_FALSE(fx.pending.running());
  EXPECT_FALSE(fx.pending.done());

  EXPECT_EQ(fx.running.state(), FutureState::running);
  EXPECT_FALSE(fx.running.cancelled());
  EXPECT_TRUE(fx.running.running());
  EXPECT_FALSE(fx.running.done());

  EXPECT_EQ(fx.cancelled.state(), FutureState::cancelled);
  EXPECT_TRUE(fx.cancelled.cancelled());
  EXPECT_FALSE(fx.cancelled.running());
  EXPECT_TRUE(fx.cancelled.done());

  EXPECT_EQ(fx.failed.state(), FutureState::finished);
  EXPECT_FALSE(fx.failed.cancelled());
  EXPECT_FALSE(fx.failed.running());
  EXPECT_TRUE(fx.failed.done());

  EXPECT_EQ(fx.successful.state(), FutureState::finished);
  EXPECT_FALSE(fx.successful.cancelled());
  EXPECT_FALSE(fx.successful.running());
  EXPECT_TRUE(fx.successful.done());
}

TEST(FutureTest, StateNamesMatchPython) {
  EXPECT_STREQ(webexec::to_string(FutureState::pending), "PENDING");
  EXPECT_STREQ(webexec::to_string(FutureState::running), "RUNNING");
  EXPECT_STREQ(webexec::to_string(FutureState::cancelled), "CANCELLED");
  EXPECT_STREQ(webexec::to_string(FutureState::finished), "FINISHED");
}

TEST(FutureTest, FreshPromiseFutureIsPendingAndValid) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  EXPECT_TRUE(future.valid());
  EXPECT_EQ(future.state(), FutureState::pending);
  EXPECT_FALSE(future.stop_requested());
}

// --- cancel() from each state --------------------------------------------------------------

TEST(FutureTest, CancelPendingSucceedsAndMakesItDone) {
  StateFixtures fx;
  EXPECT_TRUE(fx.pending.cancel());
  EXPECT_EQ(fx.pending.state(), FutureState::cancelled);
  EXPECT_TRUE(fx.pending.done());
}

TEST(FutureTest, CancelRunningFails) {
  StateFixtures fx;
  EXPECT_FALSE(fx.running.cancel());
  EXPECT_EQ(fx.running.state(), FutureState::running);
}

TEST(FutureTest, CancelCancelledReturnsTrueAgain) {
  StateFixtures fx;
  EXPECT_TRUE(fx.cancelled.cancel());
  EXPECT_EQ(fx.cancelled.state(), FutureState::cancelled);
}

TEST(FutureTest, CancelFailedFails) {
  StateFixtures fx;
  EXPECT_FALSE(fx.failed.cancel());
  EXPECT_EQ(fx.failed.state(), FutureState::finished);
  EXPECT_THROW(fx.failed.result(), TestError);
}

TEST(FutureTest, CancelSuccessfulFails) {
  StateFixtures fx;
  EXPECT_FALSE(fx.successful.cancel());
  EXPECT_EQ(fx.successful.state(), FutureState::finished);
  EXPECT_EQ(fx.successful.result(), 42);
}

// --- result(timeout=0) and exception(timeout=0) in each state -----------------------------

TEST(FutureTest, ResultWithZeroTimeoutInEachState) {
  StateFixtures fx;
  EXPECT_THROW(fx.pending.result(0ms), webexec::TimeoutError);
  EXPECT_THROW(fx.running.result(0ms), webexec::TimeoutError);
  EXPECT_THROW(fx.cancelled.result(0ms), webexec::CancelledError);
  try {
    static_cast<void>(fx.failed.result(0ms));
    ADD_FAILURE() << "result() of a failed future returned";
  } catch (const TestError& e) {
    EXPECT_STREQ(e.what(), "fixture failure");
  }
  EXPECT_EQ(fx.successful.result(0ms), 42);
}

TEST(FutureTest, ExceptionWithZeroTimeoutInEachState) {
  StateFixtures fx;
  EXPECT_THROW(static_cast<void>(fx.pending.exception(0ms)), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(fx.running.exception(0ms)), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(fx.cancelled.exception(0ms)), webexec::CancelledError);
  const std::exception_ptr error = fx.failed.exception(0ms);
  ASSERT_NE(error, nullptr);
  EXPECT_THROW(std::rethrow_exception(error), TestError);
  EXPECT_EQ(what_of(error), "fixture failure");
  EXPECT_EQ(fx.successful.exception(0ms), nullptr);
}

TEST(FutureTest, ShortAndNegativeTimeoutsOnPendingThrowTimeoutError) {
  StateFixtures fx;
  EXPECT_THROW(fx.pending.result(50ms), webexec::TimeoutError);
  EXPECT_THROW(fx.pending.result(-5ms), webexec::TimeoutError);
  EXPECT_THROW(static_cast<void>(fx.running.exception(50ms)), webexec::TimeoutError);
  EXPECT_FALSE(fx.pending.done());
}

TEST(FutureTest, WaitReportsDoneWithinTimeout) {
  StateFixtures fx;
  EXPECT_FALSE(fx.pending.wait(0ms));
  EXPECT_FALSE(fx.running.wait(20ms));
  EXPECT_TRUE(fx.cancelled.wait(0ms));
  EXPECT_TRUE(fx.failed.wait(0ms));
  EXPECT_TRUE(fx.successful.wait());
}

// --- done callbacks ----------------------------------------------------------------------

TEST(FutureTest, CallbackSeesResult) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  int seen = 0;
  future.add_done_callback([&seen](const webexec::Future<int>& f) { seen = f.result(); });
  EXPECT_EQ(seen, 0);
  promise.set_result(5);
  EXPECT_EQ(seen, 5);
}

TEST(FutureTest, CallbackSeesException) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::string seen;
  future.add_done_callback(
      [&seen](const webexec::Future<int>& f) { seen = what_of(f.exception()); });
  promise.set_exception(std::make_exception_ptr(TestError("test")));
  EXPECT_EQ(seen, "test");
}

TEST(FutureTest, CallbackSeesCancel) {
  webexec::Promise<int> promise;
  webexec::Future<int> future = promise.future();
  bool was_cancelled = false;
  future.add_done_callback(
      [&was_cancelled](const webexec::Future<int>& f) { was_cancelled = f.cancelled(); });
  EXPECT_FALSE(was_cancelled);
  EXPECT_TRUE(future.cancel());
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureTest, CallbackRunsOnceOnly) {
  webexec::Promise<int> promise;
  webexec::Future<int> future = promise.future();
  int calls = 0;
  future.add_done_callback([&calls](const webexec::Future<int>&) { ++calls; });
  promise.set_result(1);
  EXPECT_FALSE(future.cancel());
  EXPECT_EQ(future.result(), 1);
  EXPECT_EQ(calls, 1);
}

TEST(FutureTest, CallbacksRunInRegistrationOrder) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::vector<int> order;
  for (int i = 0; i < 10; ++i) {
    future.add_done_callback([&order, i](const webexec::Future<int>&) { order.push_back(i); });
  }
  promise.set_result(0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(FutureTest, ThrowingCallbackGoesToErrorHandlerAndLaterCallbacksStillRun) {
  ErrorLog log;
  const ScopedErrorHandler guard(log.handler());
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::vector<int> ran;
  future.add_done_callback([&ran](const webexec::Future<int>&) { ran.push_back(1); });
  future.add_done_callback([](const webexec::Future<int>&) { throw TestError("doh!"); });
  future.add_done_callback([&ran](const webexec::Future<int>&) { ran.push_back(3); });
  promise.set_result(5);
  EXPECT_EQ(ran, (std::vector<int>{1, 3}));
  EXPECT_EQ(log.reports(), (std::vector<std::string>{"done callback: doh!"}));
  EXPECT_EQ(future.result(), 5);
}

TEST(FutureTest, ThrowingCallbackAddedAfterDoneGoesToErrorHandler) {
  ErrorLog log;
  const ScopedErrorHandler guard(log.handler());
  StateFixtures fx;
  EXPECT_NO_THROW(fx.successful.add_done_callback(
      [](const webexec::Future<int>&) { throw TestError("late"); }));
  EXPECT_EQ(log.reports(), (std::vector<std::string>{"done callback: late"}));
}

TEST(FutureTest, DefaultErrorHandlerPrintsToStderr) {
  const ScopedErrorHandler guard(webexec::ErrorHandler{});  // empty: the default handler
  StateFixtures fx;
  testing::internal::CaptureStderr();
  fx.successful.add_done_callback([](const webexec::Future<int>&) { throw TestError("boom"); });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("webexec: exception in done callback: boom"), std::string::npos) << err;
}

TEST(FutureTest, SetErrorHandlerReturnsThePreviousHandler) {
  int first_calls = 0;
  const ScopedErrorHandler guard(
      [&first_calls](const char* /*where*/, const std::exception_ptr& /*error*/) {
        ++first_calls;
      });
  const webexec::ErrorHandler previous =
      webexec::set_error_handler([](const char* /*where*/, const std::exception_ptr& /*error*/) {});
  ASSERT_TRUE(previous);
  previous("test", nullptr);
  EXPECT_EQ(first_calls, 1);
  // Put the first one back; a callback error must now reach it.
  webexec::set_error_handler(previous);
  StateFixtures fx;
  fx.successful.add_done_callback([](const webexec::Future<int>&) { throw TestError("x"); });
  EXPECT_EQ(first_calls, 2);
}

TEST(FutureTest, CallbacksAddedAfterDoneRunImmediatelyOnTheCallingThread) {
  StateFixtures fx;
  const std::thread::id me = std::this_thread::get_id();

  int value = 0;
  std::thread::id ran_on;
  fx.successful.add_done_callback([&](const webexec::Future<int>& f) {
    value = f.result();
    ran_on = std::this_thread::get_id();
  });
  EXPECT_EQ(value, 42);
  EXPECT_EQ(ran_on, me);

  std::string message;
  fx.failed.add_done_callback(
      [&message](const webexec::Future<int>& f) { message = what_of(f.exception()); });
  EXPECT_EQ(message, "fixture failure");

  bool was_cancelled = false;
  fx.cancelled.add_done_callback(
      [&was_cancelled](const webexec::Future<int>& f) { was_cancelled = f.cancelled(); });
  EXPECT_TRUE(was_cancelled);
}

TEST(FutureTest, CallbacksRunOnTheCompletingThread) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::thread::id ran_on;
  future.add_done_callback(
      [&ran_on](const webexec::Future<int>&) { ran_on = std::this_thread::get_id(); });
  std::thread::id completer;
  std::thread producer([&] {
    completer = std::this_thread::get_id();
    promise.set_result(1);
  });
  producer.join();
  EXPECT_EQ(ran_on, completer);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(FutureTest, CallbackRunsEvenIfEveryOtherHandleIsGone) {
  webexec::Promise<int> promise;
  int seen = 0;
  {
    const webexec::Future<int> future = promise.future();
    future.add_done_callback([&seen](const webexec::Future<int>& f) { seen = f.result(); });
  }
  promise.set_result(8);
  EXPECT_EQ(seen, 8);
}

// --- completion arriving from another thread while blocked -------------------------------

TEST(FutureTest, ResultFromAnotherThreadWakesBlockedResult) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    promise.set_result(42);
  });
  waiting.count_down();
  EXPECT_EQ(future.result(), 42);
  producer.join();
}

TEST(FutureTest, ResultFromAnotherThreadWakesTimedResult) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    promise.set_result(7);
  });
  waiting.count_down();
  EXPECT_EQ(future.result(60s), 7);
  producer.join();
}

TEST(FutureTest, CancelFromAnotherThreadWakesBlockedResult) {
  webexec::Promise<int> promise;
  webexec::Future<int> future = promise.future();
  std::latch waiting(1);
  std::thread canceller([&] {
    waiting.wait();
    EXPECT_TRUE(future.cancel());
  });
  waiting.count_down();
  EXPECT_THROW(future.result(), webexec::CancelledError);
  canceller.join();
  EXPECT_FALSE(promise.set_running_or_notify_cancel());
}

TEST(FutureTest, ExceptionFromAnotherThreadWakesBlockedException) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  std::latch waiting(1);
  std::thread producer([&] {
    waiting.wait();
    promise.set_exception(std::make_exception_ptr(TestError("from afar")));
  });
  waiting.count_down();
  const std::exception_ptr error = future.exception();
  producer.join();
  EXPECT_EQ(what_of(error), "from afar");
  EXPECT_THROW(future.result(), TestError);
}

TEST(FutureTest, ManyWaitersAllWake) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  constexpr int waiter_count = 4;
  std::latch waiting(waiter_count);
  std::vector<int> seen(waiter_count, 0);
  std::vector<std::thread> waiters;
  waiters.reserve(waiter_count);
  for (int i = 0; i < waiter_count; ++i) {
    waiters.emplace_back([&, i] {
      waiting.count_down();
      seen[static_cast<std::size_t>(i)] = future.result();
    });
  }
  waiting.wait();
  promise.set_result(3);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(seen, std::vector<int>(waiter_count, 3));
}

// --- Promise ----------------------------------------------------------------------------

TEST(FutureTest, SetResultTwiceThrowsInvalidStateError) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  promise.set_result(1);
  EXPECT_THROW(promise.set_result(2), webexec::InvalidStateError);
  EXPECT_THROW(promise.set_exception(std::make_exception_ptr(TestError("late"))),
               webexec::InvalidStateError);
  EXPECT_EQ(future.result(), 1);
  EXPECT_EQ(future.exception(), nullptr);
}

TEST(FutureTest, SetExceptionTwiceThrowsInvalidStateError) {
  webexec::Promise<int> promise;
  const webexec::Future<int> future = promise.future();
  promise.set_exception(std::make_exception_ptr(TestError("first")));
  EXPECT_THROW(promise.set_exception(std::make_exception_ptr(TestError("second"))),
               webexec::InvalidStateError);
  EXPECT_THROW(promise.set_result(3), webexec::InvalidStateError);
  EXPECT_EQ(what_of(future.exception()), "first");
}

TEST(FutureTest, SetResultAfterCancelThrowsInvalidStateError) {
  webexec::Promise<int> promise;
  webexec::Future<int> future = promise.future();
  ASSERT_TRUE(future.cancel());
  EXPECT_THROW(promise.set_result(1), webexec::InvalidStateError);
  EXPECT_TRUE(future.cancelled());
}

TEST(FutureTest, SetRunningOrNotifyCancel) {
  webexec::Promise<int> pending;
  const webexec::Future<int> pending_future = pending.future();
  EXPECT_TRUE(pending.set_running_or_notify_cancel());
  EXPECT_EQ(pending_future.state(), FutureState::running);
  EXPECT_THROW(pending.set_running_or_notify_cancel(), webexec::InvalidStateError);
  pending.set_result(1);
  EXPECT_THROW(pending.set_running_or_notify_cancel(), webexec::InvalidStateError);

  webexec::Promise<int> cancelled;
  webexec::Future<int> cancelled_future = cancelled.future();
  ASSERT_TRUE(cancelled_future.cancel());
  EXPECT_FALSE(cancelled.set_running_or_notify_cancel());
  EXPECT_EQ(cancelled_future.state(), FutureState::cancelled);
}

TEST(FutureTest, RunningFutureCanBeSet) {
  webexec::Promise<std::string> promise;
  const webexec::Future<std::string> future = promise.future();
  ASSERT_TRUE(promise.set_running_or_notify_cancel());
  promise.set_result("done");
  EXPECT_EQ(future.state(), FutureState::finished);
  EXPECT_EQ(future.result(), "done");
}

TEST(FutureTest, PromiseDestroyedUnsetBreaksTheFuture) {
  webexec::Future<int> pending;
  webexec::Future<int> running;
  {
    webexec::Promise<int> pending_promise;
    webexec::Promise<int> running_promise;
    pending = pending_promise.future();
    running = running_promise.future();
    ASSERT_TRUE(running_promise.set_running_or_notify_cancel());
  }
  EXPECT_TRUE(pending.done());
  EXPECT_THROW(pending.result(), webexec::BrokenPromise);
  EXPECT_THROW(running.result(), webexec::BrokenPromise);
  EXPECT_THROW(std::rethrow_exception(running.exception()), webexec::BrokenPromise);
}

TEST(FutureTest, PromiseDestroyedAfterSettingKeepsTheOutcome) {
  webexec::Future<int> set;
  webexec::Future<int> cancelled;
  {
    webexec::Promise<int> set_promise;
    webexec::Promise<int> cancelled_promise;
    set = set_promise.future();
    cancelled = cancelled_promise.future();
    set_promise.set_result(9);
    ASSERT_TRUE(cancelled.cancel());
  }
  EXPECT_EQ(set.result(), 9);
  EXPECT_TRUE(cancelled.cancelled());
}

TEST(FutureTest, PromiseDestroyedWakesABlockedWaiter) {
  auto promise = std::make_unique<webexec::Promise<int>>();
  const webexec::Future<int> future = promise->future();
  std::latch waiting(1);
  std::thread breaker([&] {
    waiting.wait();
    promise.reset();
  });
  waiting.count_down();
  EXPECT_THROW(future.result(), webexec::BrokenPromise);
  breaker.join();
}

TEST(FutureTest, MovedPromiseKeepsOneProducer) {
  webexec::Promise<int> first;
  const webexec::Future<int> future = first.future();
  webexec::Promise<int> second = std::move(first);
  // NOLINTNEXTLINE(bugprone-use-after-move): a moved-from promise is empty
  EXPECT_THROW(static_cast<void>(first.future()), webexec::InvalidStateError);
  EXPECT_FALSE(future.done());  // moving did not break it
  second.set_result(4);
  EXPECT_EQ(future.result(), 4);
}

TEST(FutureTest, PromiseFutureTakesNoStopToken) {
  webexec::Promise<int> promise;
  webexec::Future<int> future = promise.future();
  EXPECT_FALSE(future.request_stop());
  EXPECT_FALSE(future.stop_requested());
  EXPECT_FALSE(future.cancelled());
}

// --- result() and handles -------------------------------------------------------------------

TEST(FutureTest, ResultCanBeCalledManyTimes) {
  webexec::Promise<std::string> promise;
  const webexec::Future<std::string> future = promise.future();
  promise.set_result("value");
  const std::string& first = future.result();
  const std::string& second = future.result();
  EXPECT_EQ(first, "value");
  EXPECT_EQ(&first, &second);  // the same stored object, not a copy
  EXPECT_EQ(future.result(0ms), "value");

  webexec::Promise<int> failing;
  const webexec::Future<int> failed = failing.future();
  failing.set_exception(std::make_exception_ptr(TestError("again")));
  for (int i = 0; i < 3; ++i) EXPECT_THROW(failed.result(), TestError);
}

TEST(FutureTest, ResultOfTemporaryHandleIsCopiedOut) {
  webexec::Promise<std::string> promise;
  promise.set_result("copied");
  const std::string value = promise.future().result();
  EXPECT_EQ(value, "copied");
}

TEST(FutureTest, MoveOnlyResult) {
  webexec::Promise<std::unique_ptr<int>> promise;
  const webexec::Future<std::unique_ptr<int>> future = promise.future();
  promise.set_result(std::make_unique<int>(11));
  ASSERT_NE(future.result(), nullptr);
  EXPECT_EQ(*future.result(), 11);
}

TEST(FutureTest, VoidFuture) {
  webexec::Promise<void> promise;
  const webexec::Future<void> future = promise.future();
  EXPECT_THROW(future.result(0ms), webexec::TimeoutError);
  promise.set_result();
  EXPECT_NO_THROW(future.result());
  EXPECT_EQ(future.exception(), nullptr);
  EXPECT_THROW(promise.set_result(), webexec::InvalidStateError);

  webexec::Promise<void> failing;
  const webexec::Future<void> failed = failing.future();
  failing.set_exception(std::make_exception_ptr(TestError("void failure")));
  EXPECT_THROW(failed.result(), TestError);
}

TEST(FutureTest, CopiesShareOneState) {
  webexec::Promise<int> promise;
  webexec::Future<int> original = promise.future();
  // NOLINTNEXTLINE(performance-unnecessary-copy-initialization): the copy is the point
  const webexec::Future<int> copy = original;
  webexec::Future<int> assigned;
  assigned = copy;
  EXPECT_TRUE(assigned.cancel());
  EXPECT_TRUE(original.cancelled());
  EXPECT_TRUE(copy.cancelled());

  webexec::Promise<int> other;
  webexec::Future<int> a = other.future();
  // NOLINTNEXTLINE(performance-unnecessary-copy-initialization): the copy is the point
  const webexec::Future<int> b = a;
  other.set_result(12);
  EXPECT_EQ(&a.result(), &b.result());
}

TEST(FutureTest, EmptyHandleThrowsInvalidStateError) {
  webexec::Future<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(static_cast<void>(empty.state()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(empty.done()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(empty.cancelled()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(empty.running()), webexec::InvalidStateError);
  EXPECT_THROW(empty.cancel(), webexec::InvalidStateError);
  EXPECT_THROW(empty.request_stop(), webexec::InvalidStateError);
  EXPECT_THROW(empty.wait(0ms), webexec::InvalidStateError);
  EXPECT_THROW(empty.result(), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(empty.exception()), webexec::InvalidStateError);
  EXPECT_THROW(empty.add_done_callback([](const webexec::Future<int>&) {}),
               webexec::InvalidStateError);

  const webexec::AnyFuture any;
  EXPECT_FALSE(any.valid());
  EXPECT_THROW(static_cast<void>(any.result_type()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(any.as<int>()), webexec::InvalidStateError);
  EXPECT_THROW(static_cast<void>(any.done()), webexec::InvalidStateError);
}

TEST(FutureTest, MovedFromHandleIsEmpty) {
  webexec::Promise<int> promise;
  webexec::Future<int> source = promise.future();
  const webexec::Future<int> target = std::move(source);
  EXPECT_FALSE(source.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_THROW(static_cast<void>(source.done()), webexec::InvalidStateError);
  EXPECT_TRUE(target.valid());
  promise.set_result(2);
  EXPECT_EQ(target.result(), 2);
}

// --- AnyFuture ---------------------------------------------------------------------------

TEST(FutureTest, AnyFutureConvertsAndSharesState) {
  webexec::Promise<int> promise;
  webexec::Future<int> typed = promise.future();
  const webexec::AnyFuture any = typed;
  EXPECT_TRUE(any.valid());
  EXPECT_TRUE(typed.valid());
  EXPECT_EQ(any.result_type(), typeid(int));
  EXPECT_TRUE(any.holds<int>());
  EXPECT_FALSE(any.holds<long>());
  EXPECT_EQ(any.state(), FutureState::pending);
  promise.set_result(17);
  EXPECT_TRUE(any.done());
  EXPECT_EQ(any.result<int>(), 17);
  EXPECT_EQ(any.as<int>().result(), 17);
  const webexec::Future<int> typed_again = any.as<int>();
  EXPECT_EQ(&typed_again.result(), &typed.result());
}

TEST(FutureTest, AnyFutureFromMovedFutureTakesItsReference) {
  webexec::Promise<std::string> promise;
  webexec::Future<std::string> typed = promise.future();
  const webexec::AnyFuture any = std::move(typed);
  EXPECT_FALSE(typed.valid());  // NOLINT(bugprone-use-after-move)
  promise.set_result("moved");
  EXPECT_EQ(any.result<std::string>(), "moved");
}

TEST(FutureTest, AnyFutureTypeMismatchThrowsInvalidArgument) {
  webexec::Promise<int> promise;
  const webexec::AnyFuture any = promise.future();
  promise.set_result(1);
  EXPECT_THROW(static_cast<void>(any.as<double>()), std::invalid_argument);
  EXPECT_THROW(static_cast<void>(any.result<std::string>()), std::invalid_argument);
  try {
    static_cast<void>(any.as<double>());
    ADD_FAILURE() << "as<double>() on an int future returned";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    // Demangled, as in every other message ("i" and "d" before).
    EXPECT_NE(message.find("of type int, not double"), std::string::npos) << message;
  }
}

TEST(FutureTest, AnyFutureOfVoid) {
  webexec::Promise<void> promise;
  const webexec::AnyFuture any = promise.future();
  EXPECT_EQ(any.result_type(), typeid(void));
  EXPECT_TRUE(any.holds<void>());
  promise.set_result();
  EXPECT_NO_THROW(any.result<void>());
}

TEST(FutureTest, AnyFutureCancelAndExceptionReachTheTypedFuture) {
  webexec::Promise<int> promise;
  const webexec::Future<int> typed = promise.future();
  webexec::AnyFuture any = typed;
  EXPECT_TRUE(any.cancel());
  EXPECT_TRUE(typed.cancelled());
  EXPECT_THROW(static_cast<void>(any.exception(0ms)), webexec::CancelledError);

  webexec::Promise<int> failing;
  const webexec::AnyFuture failed = failing.future();
  failing.set_exception(std::make_exception_ptr(TestError("any")));
  EXPECT_EQ(what_of(failed.exception()), "any");
  EXPECT_THROW(static_cast<void>(failed.result<int>()), TestError);
}

TEST(FutureTest, AnyFutureEqualityIsIdentity) {
  webexec::Promise<int> first;
  webexec::Promise<int> second;
  const webexec::Future<int> f = first.future();
  const webexec::AnyFuture a = f;
  const webexec::AnyFuture b = f;
  const webexec::AnyFuture c = second.future();
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(webexec::AnyFuture{} == webexec::AnyFuture{});
}

TEST(FutureTest, AnyFutureCallbackGetsAnyFuture) {
  webexec::Promise<std::string> promise;
  const webexec::AnyFuture any = promise.future();
  std::string seen;
  any.add_done_callback([&seen](const webexec::AnyFuture& f) { seen = f.result<std::string>(); });
  promise.set_result("typed later");
  EXPECT_EQ(seen, "typed later");
}

}  // namespace
