// FutureCollection (Step 2): executor.futures, the stored futures a later
// request polls. Keys (not values, upstream #35), empty optionals for a
// missing key, bounded without losing running work, a TTL for finished
// entries, progress by key, a JSON status, and thread safety.
#include "webexec/future_collection.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec::FutureCollection;
using webexec::FutureState;
using webexec_test::core::Gate;

/// Upper bound for waits that should end almost at once; reaching it fails the test.
constexpr auto kPatience = 10s;

/// A future that has finished with `value`.
webexec::Future<int> finished(int value) {
  webexec::Promise<int> promise;
  promise.set_result(value);
  return promise.future();
}

/// A result type with no JSON form.
struct Opaque {
  int value = 0;
};

TEST(FutureCollectionTest, AddContainsGetAndSize) {
  FutureCollection futures;
  EXPECT_EQ(futures.size(), 0U);
  const auto f = finished(1);
  futures.add("calc_power", f);
  EXPECT_EQ(futures.size(), 1U);
  EXPECT_TRUE(futures.contains("calc_power"));
  const auto got = futures.get("calc_power");
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got == webexec::AnyFuture(f));
  EXPECT_EQ(futures.size(), 1U) << "get does not remove";
}

TEST(FutureCollectionTest, ContainsChecksKeysNotFutures) {
  // Upstream #35: `in` compares against the stored futures.
  FutureCollection futures;
  futures.add("report", finished(1));
  EXPECT_TRUE(futures.contains("report"));
  EXPECT_FALSE(futures.contains("1"));
  EXPECT_FALSE(futures.contains("repor"));
  EXPECT_FALSE(futures.contains(""));
}

TEST(FutureCollectionTest, PopRemovesAndReturnsTheFuture) {
  FutureCollection futures;
  const auto f = finished(42);
  futures.add("answer", f);
  const auto popped = futures.pop("answer");
  ASSERT_TRUE(popped.has_value());
  EXPECT_TRUE(*popped == webexec::AnyFuture(f));
  EXPECT_EQ(popped->result<int>(), 42);
  EXPECT_FALSE(futures.contains("answer"));
  EXPECT_EQ(futures.size(), 0U);
  EXPECT_FALSE(futures.pop("answer").has_value());
}

TEST(FutureCollectionTest, PopOfAMissingKeyIsEmpty) {
  FutureCollection futures;
  EXPECT_FALSE(futures.pop("missing").has_value());
  EXPECT_FALSE(futures.get("missing").has_value());
}

TEST(FutureCollectionTest, PopIfDoneKeepsAPendingFutureAndTakesADoneOne) {
  FutureCollection futures;
  webexec::Promise<int> promise;
  futures.add("job", promise.future());
  EXPECT_FALSE(futures.pop_if_done("missing").has_value());

  const auto pending = futures.pop_if_done("job");
  ASSERT_TRUE(pending.has_value());
  EXPECT_EQ(pending->state, FutureState::pending);
  EXPECT_FALSE(pending->future.has_value());
  EXPECT_TRUE(futures.contains("job")) << "a pending future stays stored";

  promise.set_result(7);
  const auto done = futures.pop_if_done("job");
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->state, FutureState::finished);
  ASSERT_TRUE(done->future.has_value());
  EXPECT_EQ(done->future->result<int>(), 7);
  EXPECT_FALSE(futures.contains("job"));
  EXPECT_FALSE(futures.pop_if_done("job").has_value());
}

// Issue 9 item 10: of many pollers of one done future, exactly one receives it; every
// other one sees the key missing (never "done" with nothing to pop).
TEST(FutureCollectionTest, PopIfDoneHandsADoneFutureToExactlyOnePoller) {
  constexpr int kPollers = 8;
  constexpr int kRounds = 200;
  FutureCollection futures;
  for (int round = 0; round < kRounds; ++round) {
    futures.add("calc_power", finished(round));
    std::latch start(kPollers);
    std::atomic<int> got{0};
    std::atomic<int> missing{0};
    std::vector<std::thread> pollers;
    for (int p = 0; p < kPollers; ++p) {
      pollers.emplace_back([&] {
        start.arrive_and_wait();
        auto polled = futures.pop_if_done("calc_power");
        if (!polled) {
          missing.fetch_add(1);
        } else if (polled->future && polled->future->result<int>() == round) {
          got.fetch_add(1);
        }
      });
    }
    for (auto& t : pollers) t.join();
    ASSERT_EQ(got.load(), 1) << "round " << round;
    ASSERT_EQ(missing.load(), kPollers - 1) << "round " << round;
  }
}

TEST(FutureCollectionTest, KeysAreInInsertionOrder) {
  FutureCollection futures;
  futures.add("c", finished(1));
  futures.add("a", finished(2));
  futures.add("b", finished(3));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"c", "a", "b"}));
  static_cast<void>(futures.pop("a"));
  futures.add("a", finished(4));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"c", "b", "a"}));
}

TEST(FutureCollectionTest, DuplicateKeyThrowsAndKeepsTheOriginal) {
  FutureCollection futures;
  const auto original = finished(1);
  futures.add("job", original);
  try {
    futures.add("job", finished(2));
    ADD_FAILURE() << "a duplicate key was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("job"), std::string::npos) << e.what();
  }
  EXPECT_EQ(futures.size(), 1U);
  EXPECT_EQ(futures.result<int>("job"), 1);
}

TEST(FutureCollectionTest, EmptyFutureIsRejected) {
  FutureCollection futures;
  EXPECT_THROW(futures.add("empty", webexec::AnyFuture()), std::invalid_argument);
  EXPECT_FALSE(futures.contains("empty"));
}

TEST(FutureCollectionTest, MissingKeyQueriesAreEmpty) {
  FutureCollection futures;
  futures.add("present", finished(1));
  EXPECT_FALSE(futures.done("missing").has_value());
  EXPECT_FALSE(futures.running("missing").has_value());
  EXPECT_FALSE(futures.cancelled("missing").has_value());
  EXPECT_FALSE(futures.state("missing").has_value());
  EXPECT_FALSE(futures.result<int>("missing").has_value());
  EXPECT_FALSE(futures.exception("missing").has_value());
  EXPECT_FALSE(futures.progress("missing").has_value());
  EXPECT_FALSE(futures.status("missing").has_value());
  EXPECT_FALSE(futures.cancel("missing").has_value());
}

TEST(FutureCollectionTest, QueriesFollowAPendingRunningFinishedFuture) {
  FutureCollection futures;
  webexec::Promise<int> promise;
  futures.add("job", promise.future());
  EXPECT_EQ(futures.state("job"), FutureState::pending);
  EXPECT_EQ(futures.done("job"), false);
  EXPECT_EQ(futures.running("job"), false);
  EXPECT_EQ(futures.cancelled("job"), false);

  ASSERT_TRUE(promise.set_running_or_notify_cancel());
  EXPECT_EQ(futures.state("job"), FutureState::running);
  EXPECT_EQ(futures.running("job"), true);
  EXPECT_EQ(futures.done("job"), false);
  EXPECT_THROW(static_cast<void>(futures.result<int>("job", 1ms)), webexec::TimeoutError);

  promise.set_result(7);
  EXPECT_EQ(futures.state("job"), FutureState::finished);
  EXPECT_EQ(futures.done("job"), true);
  EXPECT_EQ(futures.running("job"), false);
  EXPECT_EQ(futures.result<int>("job"), 7);
  const auto error = futures.exception("job");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(*error, nullptr);
}

TEST(FutureCollectionTest, QueriesOnAFailedFuture) {
  FutureCollection futures;
  webexec::Promise<int> promise;
  promise.set_exception(std::make_exception_ptr(std::runtime_error("disk full")));
  futures.add("job", promise.future());
  EXPECT_EQ(futures.done("job"), true);
  const auto error = futures.exception("job");
  ASSERT_TRUE(error.has_value());
  ASSERT_NE(*error, nullptr);
  EXPECT_THROW(static_cast<void>(futures.result<int>("job")), std::runtime_error);
}

TEST(FutureCollectionTest, CancelByKey) {
  FutureCollection futures;
  webexec::Promise<int> pending;
  webexec::Promise<int> running;
  futures.add("pending", pending.future());
  futures.add("running", running.future());
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  EXPECT_EQ(futures.cancel("pending"), true);
  EXPECT_EQ(futures.cancel("running"), false);
  EXPECT_EQ(futures.cancelled("pending"), true);
  EXPECT_EQ(futures.state("pending"), FutureState::cancelled);
  EXPECT_EQ(futures.done("pending"), true);
  EXPECT_THROW(static_cast<void>(futures.result<int>("pending")), webexec::CancelledError);
  running.set_result(1);
}

TEST(FutureCollectionTest, ZeroMaxLengthIsRejected) {
  EXPECT_THROW(static_cast<void>(FutureCollection(0)), std::invalid_argument);
  FutureCollection futures(3);
  EXPECT_THROW(futures.set_max_length(0), std::invalid_argument);
  EXPECT_EQ(futures.max_length(), 3U);
}

TEST(FutureCollectionTest, DefaultMaxLengthIs50) {
  const FutureCollection futures;
  EXPECT_EQ(futures.max_length(), 50U);
}

TEST(FutureCollectionTest, WhenFullTheOldestFinishedEntryIsEvicted) {
  FutureCollection futures(3);
  webexec::Promise<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  futures.add("a_running", running.future());
  futures.add("b_finished", finished(2));
  futures.add("c_finished", finished(3));

  futures.add("d", finished(4));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"a_running", "c_finished", "d"}));
  EXPECT_FALSE(futures.contains("b_finished"));
  EXPECT_TRUE(futures.contains("a_running")) << "running work was evicted";
  running.set_result(1);
}

TEST(FutureCollectionTest, RunningAndPendingEntriesAreNeverEvicted) {
  FutureCollection futures(3);
  webexec::Promise<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  webexec::Promise<int> pending;
  futures.add("running", running.future());
  futures.add("pending", pending.future());
  futures.add("done", finished(1));
  futures.add("next", finished(2));  // evicts "done", the only finished entry
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"running", "pending", "next"}));
  futures.add("last", finished(3));  // evicts "next"
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"running", "pending", "last"}));
  running.set_result(1);
  pending.set_result(2);
}

TEST(FutureCollectionTest, CancelledEntriesCanBeEvicted) {
  FutureCollection futures(2);
  webexec::Promise<int> cancelled;
  webexec::Promise<int> pending;
  futures.add("cancelled", cancelled.future());
  futures.add("pending", pending.future());
  ASSERT_EQ(futures.cancel("cancelled"), true);
  futures.add("new", finished(1));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"pending", "new"}));
  pending.set_result(1);
}

TEST(FutureCollectionTest, FullOfUnfinishedWorkThrowsCapacityError) {
  FutureCollection futures(2);
  webexec::Promise<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  webexec::Promise<int> pending;
  futures.add("running", running.future());
  futures.add("pending", pending.future());
  try {
    futures.add("refused", finished(3));
    ADD_FAILURE() << "a full collection accepted a future";
  } catch (const webexec::CapacityError& e) {
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(futures.contains("refused"));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"running", "pending"}));

  // Once one finishes, there is room again.
  pending.set_result(2);
  futures.add("accepted", finished(3));
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"running", "accepted"}));
  running.set_result(1);
}

TEST(FutureCollectionTest, SmallerMaxLengthAppliesFromTheNextAdd) {
  FutureCollection futures(3);
  futures.add("a", finished(1));
  futures.add("b", finished(2));
  futures.add("c", finished(3));
  futures.set_max_length(1);
  EXPECT_EQ(futures.max_length(), 1U);
  EXPECT_EQ(futures.size(), 3U);
  futures.add("d", finished(4));
  EXPECT_EQ(futures.keys(), std::vector<std::string>{"d"});
}

TEST(FutureCollectionTest, TtlIsOffByDefaultAndConfigurable) {
  FutureCollection futures;
  EXPECT_FALSE(futures.ttl().has_value());
  futures.set_ttl(5s);
  EXPECT_EQ(futures.ttl(), FutureCollection::Clock::duration(5s));
  futures.set_ttl(std::nullopt);
  EXPECT_FALSE(futures.ttl().has_value());
}

TEST(FutureCollectionTest, ZeroTtlExpiresFinishedEntriesAtOnce) {
  FutureCollection futures;
  futures.set_ttl(0ns);
  futures.add("finished", finished(1));
  EXPECT_FALSE(futures.contains("finished"));
  EXPECT_FALSE(futures.get("finished").has_value());
  EXPECT_FALSE(futures.done("finished").has_value());
  EXPECT_FALSE(futures.status("finished").has_value());
  EXPECT_FALSE(futures.pop("finished").has_value());
  EXPECT_EQ(futures.size(), 0U);
  EXPECT_TRUE(futures.keys().empty());
}

TEST(FutureCollectionTest, UnfinishedEntriesNeverExpire) {
  FutureCollection futures;
  futures.set_ttl(0ns);
  webexec::Promise<int> pending;
  webexec::Promise<int> running;
  ASSERT_TRUE(running.set_running_or_notify_cancel());
  futures.add("pending", pending.future());
  futures.add("running", running.future());
  EXPECT_TRUE(futures.contains("pending"));
  EXPECT_TRUE(futures.contains("running"));
  EXPECT_EQ(futures.size(), 2U);
  EXPECT_EQ(futures.keys(), (std::vector<std::string>{"pending", "running"}));

  // Finishing starts the clock; with a zero TTL it is gone at once.
  running.set_result(1);
  EXPECT_FALSE(futures.contains("running"));
  EXPECT_TRUE(futures.contains("pending"));
  pending.set_result(2);
  EXPECT_FALSE(futures.contains("pending"));
}

TEST(FutureCollectionTest, FinishedEntriesExpireAfterTheTtl) {
  FutureCollection futures;
  futures.set_ttl(50ms);
  webexec::Promise<int> pending;
  futures.add("pending", pending.future());
  futures.add("finished", finished(1));
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (futures.contains("finished") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_FALSE(futures.contains("finished")) << "not expired after " << kPatience.count() << " s";
  EXPECT_TRUE(futures.contains("pending"));
  EXPECT_EQ(futures.keys(), std::vector<std::string>{"pending"});
  pending.set_result(2);
}

TEST(FutureCollectionTest, FinishedEntriesStayWithinALongTtl) {
  FutureCollection futures;
  futures.set_ttl(1h);
  futures.add("finished", finished(1));
  EXPECT_TRUE(futures.contains("finished"));
  EXPECT_EQ(futures.result<int>("finished"), 1);
}

TEST(FutureCollectionTest, StatusOfAPendingEntry) {
  FutureCollection futures;
  webexec::Promise<int> pending;
  futures.add("job", pending.future());
  const auto status = futures.status("job");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["key"], "job");
  EXPECT_EQ((*status)["state"], "PENDING");
  EXPECT_TRUE((*status)["progress"].is_null());
  EXPECT_FALSE(status->contains("result"));
  EXPECT_FALSE(status->contains("error"));
  pending.set_result(1);
}

TEST(FutureCollectionTest, StatusOfAFinishedEntryHasTheResult) {
  FutureCollection futures;
  futures.add("calc_power", finished(42));
  const auto status = futures.status("calc_power");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["key"], "calc_power");
  EXPECT_EQ((*status)["state"], "FINISHED");
  EXPECT_EQ((*status)["result"], 42);
  EXPECT_FALSE(status->contains("error"));
}

TEST(FutureCollectionTest, StatusOfAFailedEntryHasTheError) {
  FutureCollection futures;
  webexec::Promise<int> promise;
  promise.set_exception(std::make_exception_ptr(std::runtime_error("disk full")));
  futures.add("job", promise.future());
  const auto status = futures.status("job");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["state"], "FINISHED");
  ASSERT_TRUE(status->contains("error"));
  EXPECT_EQ((*status)["error"]["message"], "disk full");
  EXPECT_NE((*status)["error"]["type"].get<std::string>().find("runtime_error"), std::string::npos)
      << status->dump();
  EXPECT_FALSE(status->contains("result"));
}

TEST(FutureCollectionTest, StatusOfAResultWithoutJsonFormIsNull) {
  FutureCollection futures;
  webexec::Promise<Opaque> promise;
  promise.set_result(Opaque{3});
  futures.add("opaque", promise.future());
  const auto status = futures.status("opaque");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["state"], "FINISHED");
  EXPECT_TRUE((*status)["result"].is_null());
  EXPECT_NE((*status)["result_type"].get<std::string>().find("Opaque"), std::string::npos)
      << status->dump();
}

TEST(FutureCollectionTest, StatusOfACancelledEntry) {
  FutureCollection futures;
  webexec::Promise<int> promise;
  futures.add("job", promise.future());
  ASSERT_EQ(futures.cancel("job"), true);
  const auto status = futures.status("job");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["state"], "CANCELLED");
  EXPECT_FALSE(status->contains("result"));
}

TEST(FutureCollectionTest, ProgressReportedByAStoredTaskIsReadByKey) {
  webexec::App app("progress");
  std::promise<bool> reported;
  webexec::Executor executor(app);
  Gate gate;
  auto future = executor.submit_stored("resize", [&reported, w = gate.waiter()] {
    reported.set_value(webexec::report_progress(std::int64_t{3}, std::int64_t{10}, "resizing"));
    w.wait();  // blocked mid-progress while the test reads it
    return 10;
  });
  auto reported_future = reported.get_future();
  ASSERT_EQ(reported_future.wait_for(kPatience), std::future_status::ready);
  EXPECT_TRUE(reported_future.get()) << "report_progress in a stored task returned false";

  const auto progress = executor.futures().progress("resize");
  ASSERT_TRUE(progress.has_value());
  EXPECT_DOUBLE_EQ(progress->fraction, 0.3);
  EXPECT_EQ(progress->done, 3);
  EXPECT_EQ(progress->total, 10);
  EXPECT_EQ(progress->message, "resizing");

  const auto status = executor.futures().status("resize");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ((*status)["key"], "resize");
  EXPECT_EQ((*status)["state"], "RUNNING");
  EXPECT_DOUBLE_EQ((*status)["progress"]["fraction"].get<double>(), 0.3);
  EXPECT_EQ((*status)["progress"]["done"], 3);
  EXPECT_EQ((*status)["progress"]["total"], 10);
  EXPECT_EQ((*status)["progress"]["message"], "resizing");
  EXPECT_FALSE(status->contains("result"));

  gate.open();
  EXPECT_EQ(future.result(), 10);
  const auto final_status = executor.futures().status("resize");
  ASSERT_TRUE(final_status.has_value());
  EXPECT_EQ((*final_status)["state"], "FINISHED");
  EXPECT_EQ((*final_status)["result"], 10);
  EXPECT_EQ((*final_status)["progress"]["message"], "resizing");
}

TEST(FutureCollectionTest, ProgressAsAFractionIsClamped) {
  webexec::App app("progress");
  webexec::Executor executor(app);
  auto over = executor.submit_stored("over", [] { return webexec::report_progress(1.5, "over"); });
  auto under = executor.submit_stored("under", [] { return webexec::report_progress(-0.5); });
  auto half = executor.submit_stored("half", [] { return webexec::report_progress(0.5, "half"); });
  EXPECT_TRUE(over.result());
  EXPECT_TRUE(under.result());
  EXPECT_TRUE(half.result());
  const auto o = executor.futures().progress("over");
  const auto u = executor.futures().progress("under");
  const auto h = executor.futures().progress("half");
  ASSERT_TRUE(o && u && h);
  EXPECT_DOUBLE_EQ(o->fraction, 1.0);
  EXPECT_DOUBLE_EQ(u->fraction, 0.0);
  EXPECT_DOUBLE_EQ(h->fraction, 0.5);
  EXPECT_EQ(h->message, "half");
  EXPECT_FALSE(h->done.has_value());
  EXPECT_FALSE(h->total.has_value());
}

TEST(FutureCollectionTest, LastReportedProgressWins) {
  webexec::App app("progress");
  webexec::Executor executor(app);
  auto f = executor.submit_stored("steps", [] {
    for (std::int64_t i = 1; i <= 4; ++i) webexec::report_progress(i, std::int64_t{4});
    return 0;
  });
  EXPECT_EQ(f.result(), 0);
  const auto progress = executor.futures().progress("steps");
  ASSERT_TRUE(progress.has_value());
  EXPECT_EQ(progress->done, 4);
  EXPECT_DOUBLE_EQ(progress->fraction, 1.0);
}

TEST(FutureCollectionTest, NoProgressUntilReported) {
  webexec::App app("progress");
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit_stored("silent", [] { return 1; }).result(), 1);
  EXPECT_TRUE(executor.futures().contains("silent"));
  EXPECT_FALSE(executor.futures().progress("silent").has_value());
  FutureCollection plain;
  plain.add("added", finished(1));
  EXPECT_FALSE(plain.progress("added").has_value());
}

TEST(FutureCollectionTest, ConcurrentAddAndPopAccountForEveryKey) {
  constexpr int kThreads = 8;
  constexpr int kKeys = 200;
  FutureCollection futures(static_cast<std::size_t>(kThreads * kKeys));
  const webexec::AnyFuture done = finished(1);
  std::latch start(kThreads + 1);
  std::vector<int> popped(kThreads, 0);
  std::atomic<bool> writers_done{false};
  std::atomic<int> reader_errors{0};

  std::thread reader([&] {
    start.arrive_and_wait();
    while (!writers_done.load()) {
      const auto keys = futures.keys();
      if (keys.size() > futures.max_length()) reader_errors.fetch_add(1);
      static_cast<void>(futures.size());
      static_cast<void>(futures.contains("t0-0"));
      static_cast<void>(futures.status("t1-1"));
    }
  });
  std::vector<std::thread> writers;
  writers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        futures.add(key, done);
        if (i % 2 == 0 && futures.pop(key).has_value()) ++popped[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& writer : writers) writer.join();
  writers_done = true;
  reader.join();

  EXPECT_EQ(reader_errors.load(), 0);
  std::set<std::string> expected;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(popped[static_cast<std::size_t>(t)], kKeys / 2) << "thread " << t;
    for (int i = 1; i < kKeys; i += 2) {
      expected.insert("t" + std::to_string(t) + "-" + std::to_string(i));
    }
  }
  const auto keys = futures.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), expected);
  EXPECT_EQ(futures.size(), expected.size());
  EXPECT_EQ(keys.size(), expected.size()) << "a key is listed twice";
}

TEST(FutureCollectionTest, ConcurrentAddOfOneKeyAcceptsExactlyOne) {
  constexpr int kThreads = 8;
  FutureCollection futures;
  std::latch start(kThreads);
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        futures.add("same", finished(1));
        accepted.fetch_add(1);
      } catch (const std::invalid_argument&) {
        refused.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(refused.load(), kThreads - 1);
  EXPECT_EQ(futures.size(), 1U);
}

}  // namespace
