// Contexts (Step 2): G's copy-on-write semantics, current_app(),
// current_request() and g() outside and inside a simulated request, the
// request snapshot taken lazily at the first submit, and report_progress's
// argument checks.
#include "webexec/context.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

#include "support/core_fixtures.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::core::message_of;
using webexec_test::core::TestRequest;

/// Upper bound for waits that should end almost at once; reaching it fails the test.
constexpr auto kPatience = 10s;

/// A reusable meeting point for `parties` threads. Arrivals spin (yielding),
/// so all parties leave at nearly the same instant; the wait is bounded, so a
/// bug that keeps one party away fails the test instead of hanging it.
class Rendezvous {
 public:
  explicit Rendezvous(int parties) : parties_(parties) {}

  /// Waits until every party has arrived; false if that took longer than kPatience.
  bool arrive_and_wait() {
    const int target = (arrived_.fetch_add(1) / parties_ + 1) * parties_;
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (arrived_.load() < target) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }

 private:
  const int parties_;
  std::atomic<int> arrived_{0};
};

// ---------------------------------------------------------------- G

TEST(GTest, StartsEmpty) {
  const webexec::G g;
  EXPECT_EQ(g.size(), 0U);
  EXPECT_FALSE(g.contains("user"));
  EXPECT_EQ(g.find("user"), nullptr);
  EXPECT_TRUE(g.keys().empty());
}

TEST(GTest, SetAndGetTypedValues) {
  webexec::G g;
  g.set("user", std::string("alice"));
  g.set("count", 3);
  EXPECT_EQ(g.get<std::string>("user"), "alice");
  EXPECT_EQ(g.get<int>("count"), 3);
  EXPECT_EQ(g.size(), 2U);
  EXPECT_EQ(g.keys(), (std::vector<std::string>{"count", "user"}));
  g.set("count", 4);
  EXPECT_EQ(g.get<int>("count"), 4);
}

TEST(GTest, GetIfAndGetOr) {
  webexec::G g;
  g.set("count", 3);
  ASSERT_NE(g.get_if<int>("count"), nullptr);
  EXPECT_EQ(*g.get_if<int>("count"), 3);
  EXPECT_EQ(g.get_if<long>("count"), nullptr);
  EXPECT_EQ(g.get_if<int>("missing"), nullptr);
  EXPECT_EQ(g.get_or<int>("count", 9), 3);
  EXPECT_EQ(g.get_or<int>("missing", 9), 9);
  EXPECT_EQ(g.get_or<std::string>("count", "fallback"), "fallback");
}

TEST(GTest, WrongTypeThrowsInvalidArgumentNamingTheKey) {
  webexec::G g;
  g.set("user_id", 42);
  const std::string what =
      message_of<std::invalid_argument>([&] { static_cast<void>(g.get<std::string>("user_id")); });
  EXPECT_NE(what.find("user_id"), std::string::npos) << what;
}

TEST(GTest, MissingKeyThrowsOutOfRangeNamingTheKey) {
  const webexec::G g;
  const std::string what =
      message_of<std::out_of_range>([&] { static_cast<void>(g.get<int>("session_token")); });
  EXPECT_NE(what.find("session_token"), std::string::npos) << what;
}

TEST(GTest, WriteToACopyLeavesTheOriginalUnchanged) {
  webexec::G original;
  original.set("user", std::string("alice"));
  webexec::G copy(original);
  EXPECT_EQ(copy.get<std::string>("user"), "alice");

  copy.set("user", std::string("bob"));
  copy.set("extra", 1);
  EXPECT_EQ(original.get<std::string>("user"), "alice");
  EXPECT_FALSE(original.contains("extra"));
  EXPECT_EQ(copy.get<std::string>("user"), "bob");
}

TEST(GTest, WriteToTheOriginalLeavesTheCopyUnchanged) {
  webexec::G original;
  original.set("user", std::string("alice"));
  const webexec::G copy = original;
  original.set("user", std::string("carol"));
  original.set("later", 2);
  EXPECT_EQ(copy.get<std::string>("user"), "alice");
  EXPECT_FALSE(copy.contains("later"));
  EXPECT_EQ(copy.size(), 1U);
}

TEST(GTest, EraseOnACopyLeavesTheOriginalUnchanged) {
  webexec::G original;
  original.set("user", std::string("alice"));
  webexec::G copy;
  copy = original;
  EXPECT_TRUE(copy.erase("user"));
  EXPECT_FALSE(copy.erase("user"));
  EXPECT_FALSE(copy.contains("user"));
  EXPECT_TRUE(original.contains("user"));
}

TEST(GTest, CopiesOfCopiesStayIndependent) {
  webexec::G a;
  a.set("n", 1);
  webexec::G b = a;
  webexec::G c = b;
  b.set("n", 2);
  c.set("n", 3);
  EXPECT_EQ(a.get<int>("n"), 1);
  EXPECT_EQ(b.get<int>("n"), 2);
  EXPECT_EQ(c.get<int>("n"), 3);
}

TEST(GTest, MoveTransfersTheValues) {
  webexec::G source;
  source.set("n", 1);
  webexec::G target(std::move(source));
  EXPECT_EQ(target.get<int>("n"), 1);
  webexec::G assigned;
  assigned = std::move(target);
  EXPECT_EQ(assigned.get<int>("n"), 1);
}

// ---------------------------------------------------------------- RequestContext

TEST(RequestContextTest, HeaderLookupIgnoresCase) {
  webexec::RequestContext request;
  request.headers = {{"Content-Type", "text/plain"}, {"X-Request-Id", "abc"}};
  EXPECT_EQ(request.header("content-type"), "text/plain");
  EXPECT_EQ(request.header("X-REQUEST-ID"), "abc");
  EXPECT_FALSE(request.header("Accept").has_value());
}

TEST(RequestContextTest, QueryAndFormLookupReturnTheFirstMatch) {
  webexec::RequestContext request;
  request.query = {{"page", "2"}, {"page", "3"}};
  request.form = {{"name", "alice"}};
  EXPECT_EQ(request.query_param("page"), "2");
  EXPECT_FALSE(request.query_param("PAGE").has_value());
  EXPECT_EQ(request.form_param("name"), "alice");
  EXPECT_FALSE(request.form_param("missing").has_value());
}

// ---------------------------------------------------------------- outside any context

TEST(ContextTest, CurrentAppOutsideAnyContextThrowsContextError) {
  const std::string what =
      message_of<webexec::ContextError>([] { static_cast<void>(webexec::current_app()); });
  EXPECT_NE(what.find("outside of application context"), std::string::npos) << what;
  EXPECT_FALSE(webexec::has_app_context());
}

TEST(ContextTest, CurrentRequestOutsideAnyContextThrowsContextError) {
  const std::string what =
      message_of<webexec::ContextError>([] { static_cast<void>(webexec::current_request()); });
  EXPECT_NE(what.find("outside of request context"), std::string::npos) << what;
  EXPECT_FALSE(webexec::has_request_context());
}

TEST(ContextTest, GOutsideAnyContextThrowsContextError) {
  const std::string what =
      message_of<webexec::ContextError>([] { static_cast<void>(webexec::g()); });
  EXPECT_NE(what.find("outside of application context"), std::string::npos) << what;
}

TEST(ContextTest, ContextErrorIsAWebexecError) {
  EXPECT_THROW(static_cast<void>(webexec::current_app()), webexec::Error);
}

// ---------------------------------------------------------------- report_progress

TEST(ContextTest, ReportProgressOutsideAStoredTaskReturnsFalse) {
  EXPECT_FALSE(webexec::report_progress(0.5, "halfway"));
  EXPECT_FALSE(webexec::report_progress(std::int64_t{3}, std::int64_t{10}, "three"));
}

TEST(ContextTest, ReportProgressRejectsInvalidDoneAndTotal) {
  EXPECT_THROW(webexec::report_progress(std::int64_t{1}, std::int64_t{0}), std::invalid_argument);
  EXPECT_THROW(webexec::report_progress(std::int64_t{0}, std::int64_t{-5}), std::invalid_argument);
  EXPECT_THROW(webexec::report_progress(std::int64_t{-1}, std::int64_t{10}), std::invalid_argument);
  EXPECT_THROW(webexec::report_progress(std::int64_t{11}, std::int64_t{10}), std::invalid_argument);
  const std::string what = message_of<std::invalid_argument>(
      [] { webexec::report_progress(std::int64_t{11}, std::int64_t{10}); });
  EXPECT_NE(what.find("11"), std::string::npos) << what;
  EXPECT_NE(what.find("10"), std::string::npos) << what;
  // The edges are valid (outside a stored task they just do nothing).
  EXPECT_FALSE(webexec::report_progress(std::int64_t{0}, std::int64_t{10}));
  EXPECT_FALSE(webexec::report_progress(std::int64_t{10}, std::int64_t{10}));
}

TEST(ContextTest, ReportProgressInATaskThatIsNotStoredReturnsFalse) {
  webexec::App app("progress");
  webexec::Executor executor(app);
  auto future = executor.submit([] { return webexec::report_progress(0.5, "half"); });
  EXPECT_FALSE(future.result());
}

// ---------------------------------------------------------------- simulated request

TEST(ContextTest, InsideARequestTheRequestsContextIsCurrent) {
  webexec::App app("web");
  TestRequest request(&app, "/items/7");
  request.g().set("user", std::string("alice"));
  {
    const webexec::detail::ScopedRequest scope(&request);
    EXPECT_TRUE(webexec::has_app_context());
    EXPECT_TRUE(webexec::has_request_context());
    EXPECT_EQ(&webexec::current_app(), &app);
    EXPECT_EQ(webexec::current_request().path, "/items/7");
    EXPECT_EQ(&webexec::g(), &request.g());
    EXPECT_EQ(webexec::g().get<std::string>("user"), "alice");
  }
  EXPECT_FALSE(webexec::has_request_context());
  EXPECT_THROW(static_cast<void>(webexec::current_request()), webexec::ContextError);
  EXPECT_THROW(static_cast<void>(webexec::current_app()), webexec::ContextError);
}

TEST(ContextTest, ScopedRequestRestoresTheOuterRequest) {
  webexec::App app("web");
  TestRequest outer(&app, "/outer");
  TestRequest inner(&app, "/inner");
  const webexec::detail::ScopedRequest outer_scope(&outer);
  {
    const webexec::detail::ScopedRequest inner_scope(&inner);
    EXPECT_EQ(webexec::current_request().path, "/inner");
  }
  EXPECT_EQ(webexec::current_request().path, "/outer");
}

TEST(ContextTest, SnapshotIsNotBuiltUntilTheFirstSubmit) {
  webexec::App app("lazy");
  webexec::Executor executor(app);
  TestRequest request(&app, "/lazy");
  const webexec::detail::ScopedRequest scope(&request);
  request.g().set("user", std::string("alice"));
  EXPECT_EQ(request.builds(), 0) << "entering a request must not build the snapshot";

  auto first = executor.submit([] { return webexec::current_request().path; });
  EXPECT_EQ(request.builds(), 1);
  EXPECT_EQ(first.result(), "/lazy");
}

TEST(ContextTest, SnapshotIsBuiltOnceAndSharedBySeveralSubmits) {
  webexec::App app("lazy");
  webexec::Executor executor(app);
  TestRequest request(&app, "/shared");
  const webexec::detail::ScopedRequest scope(&request);

  auto address = [] { return &webexec::current_request(); };
  auto a = executor.submit(address);
  auto b = executor.submit(address);
  auto c = executor.submit(address);
  EXPECT_EQ(request.builds(), 1);
  EXPECT_EQ(a.result(), b.result());
  EXPECT_EQ(b.result(), c.result());
  EXPECT_EQ(a.result(), request.snapshot().get());
  EXPECT_EQ(request.builds(), 1);
}

TEST(ContextTest, SubmitOutsideARequestBuildsNoSnapshot) {
  webexec::App app("lazy");
  webexec::Executor executor(app);
  TestRequest request(&app, "/never-current");
  auto has_request = executor.submit([] { return webexec::has_request_context(); });
  EXPECT_FALSE(has_request.result());
  EXPECT_EQ(request.builds(), 0);
}

// ---------------------------------------------------------------- callbacks sharing a task

/// What one trial of the test below records: both callbacks meet, write g,
/// meet again and read back what they wrote.
struct CallbackTrial {
  Rendezvous meet{2};
  std::promise<void> default_done;
  std::optional<int> default_saw;      // written by the default callback only
  std::optional<int> inline_saw;       // written by the inline callback only
  std::atomic<bool> timed_out{false};  // a rendezvous timed out (written by both)
};

/// Meets the other callback, writes `mine` to g, meets again, returns what g holds.
std::optional<int> write_and_read_g(CallbackTrial& trial, int mine) {
  if (!trial.meet.arrive_and_wait()) trial.timed_out = true;
  webexec::g().set("who", mine);
  if (!trial.meet.arrive_and_wait()) trial.timed_out = true;
  const int* seen = webexec::g().get_if<int>("who");
  return seen != nullptr ? std::optional<int>(*seen) : std::nullopt;
}

TEST(ContextTest, CallbacksRunningAtOnceInOneTasksContextEachHaveTheirOwnG) {
  // Issue 9, item 4. A default done callback runs on the worker while a
  // callback added after completion, outside any context, runs inline on
  // this thread: both run in the task's context at the same time. They used
  // to share the task's one-word context and its g: both made the per-task
  // extras (adopting the same block reference) and both wrote the same g,
  // so the block was released twice (SIGSEGV), and ThreadSanitizer saw the
  // race. Each callback now runs in its own copy of the task's context: it
  // sees the task's g, and its writes stay its own. Half the trials submit
  // in a request (the block holds the request's g), half outside one (the
  // executor's default block).
  webexec::App app("parallel-callbacks");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  using Result = std::shared_ptr<CallbackTrial>;
  executor.add_default_done_callback([](const webexec::AnyFuture& f) {
    if (f.result_type() != typeid(Result)) return;  // the checks at the end
    const Result trial = f.as<Result>().result();
    trial->default_saw = write_and_read_g(*trial, 1);
    trial->default_done.set_value();
  });
  constexpr int kTrials = 500;
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  int trials = 0;
  for (; trials < kTrials && std::chrono::steady_clock::now() < deadline; ++trials) {
    auto trial = std::make_shared<CallbackTrial>();
    webexec::Future<Result> future;
    if (trials % 2 == 0) {
      TestRequest request(&app, "/trial");
      request.g().set("user", std::string("alice"));
      const webexec::detail::ScopedRequest scope(&request);
      future = executor.submit([trial] { return trial; });
    } else {
      future = executor.submit([trial] { return trial; });
    }
    ASSERT_EQ(future.result(), trial);  // done: the default callback runs now, on the worker
    future.add_done_callback([](const webexec::Future<Result>& f) {
      f.result()->inline_saw = write_and_read_g(*f.result(), 2);
    });
    ASSERT_EQ(trial->default_done.get_future().wait_for(kPatience), std::future_status::ready);
    ASSERT_FALSE(trial->timed_out) << "trial " << trials << ": the callbacks did not run at once";
    EXPECT_EQ(trial->default_saw, 1) << "trial " << trials;
    EXPECT_EQ(trial->inline_saw, 2) << "trial " << trials;
  }
  EXPECT_GE(trials, 10);
  // The executor's default block is intact: later tasks still run in it.
  EXPECT_EQ(executor.submit([] { return &webexec::current_app(); }).result(), &app);
  EXPECT_FALSE(executor.submit([] { return webexec::g().contains("who"); }).result());
}

// ---------------------------------------------------------------- TaskContext

// A task context is one word: the shared block, or extras that hold it. Every
// way of getting from one form to the other keeps exactly one reference per
// context and the values each context should see.
TEST(TaskContextTest, OneWordHoldsTheBlockOrTheExtrasThatHoldIt) {
  webexec::App app("ctx");
  webexec::G g;
  g.set("user", std::string("alice"));
  webexec::detail::ContextRef block = webexec::detail::make_block(&app, nullptr, nullptr, g);
  webexec::detail::ContextBlock* raw = block.get();
  EXPECT_EQ(sizeof(webexec::detail::TaskContext), sizeof(void*));
  {
    webexec::detail::TaskContext plain{block};
    EXPECT_EQ(raw->refs.load(), 2);
    EXPECT_EQ(plain.block(), raw);
    EXPECT_EQ(plain.app(), &app);
    EXPECT_FALSE(plain.has_own_g());
    EXPECT_EQ(plain.progress(), nullptr);
    EXPECT_EQ(plain.label(), "");

    webexec::detail::TaskContext copy = plain;  // still one word, one more reference
    EXPECT_EQ(raw->refs.load(), 3);
    copy.g().set("user", std::string("bob"));  // now extras, holding the same reference
    EXPECT_EQ(raw->refs.load(), 3);
    EXPECT_EQ(copy.block(), raw);
    EXPECT_EQ(copy.app(), &app);
    EXPECT_EQ(copy.current_g().get<std::string>("user"), "bob");
    EXPECT_EQ(plain.current_g().get<std::string>("user"), "alice");

    auto slot = std::make_shared<webexec::detail::ProgressSlot>();
    copy.set_job("key-1", slot);
    webexec::detail::TaskContext extras_copy = copy;  // copies the extras and the reference
    EXPECT_EQ(raw->refs.load(), 4);
    EXPECT_EQ(extras_copy.label(), "key-1");
    EXPECT_EQ(extras_copy.progress(), slot.get());
    EXPECT_EQ(extras_copy.current_g().get<std::string>("user"), "bob");
    extras_copy.g().set("user", std::string("carol"));
    EXPECT_EQ(copy.current_g().get<std::string>("user"), "bob");

    webexec::detail::TaskContext moved = std::move(extras_copy);
    EXPECT_EQ(raw->refs.load(), 4);
    EXPECT_EQ(extras_copy.block(),
              nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(moved.label(), "key-1");
    moved = plain;  // releases the extras, takes a plain reference
    EXPECT_EQ(raw->refs.load(), 4);
    EXPECT_EQ(moved.label(), "");
    moved = webexec::detail::TaskContext();  // releases it
    EXPECT_EQ(raw->refs.load(), 3);
    EXPECT_EQ(moved.app(), nullptr);
    EXPECT_EQ(moved.current_g().size(), 0U);
  }
  EXPECT_EQ(raw->refs.load(), 1);  // every context released its reference
}

}  // namespace
