// Executor configuration at init_app (Step 4): the strict duration and
// worker-count limits (issue 8 item 12), escaped and truncated values in
// errors, warnings for misspelt keys (issue 9 item 16), and duplicate
// executor names (issue 9 item 17). Every rejected config throws before any
// pool or worker process starts.
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/config.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

#include "support/core_fixtures.hpp"

namespace {

using webexec_test::core::contains;
using webexec_test::core::message_of;
using webexec_test::core::ScopedEnv;

TEST(ExecutorConfigTest, TaskTimeoutBelowOneMillisecondIsRejected) {
  // '1e-12' used to become a 0 s limit that killed every job.
  webexec::App app("timeouts");
  app.config().set("TINY_EXECUTOR_TYPE", "process");
  app.config().set("TINY_EXECUTOR_TASK_TIMEOUT", "1e-12");
  const std::string what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "tiny"); });
  EXPECT_EQ(what, "TINY_EXECUTOR_TASK_TIMEOUT='1e-12' is below the minimum of 0.001 s");
  EXPECT_FALSE(app.has_extension("tinyexecutor"));
}

TEST(ExecutorConfigTest, TaskTimeoutRejectsWhatIntegersReject) {
  webexec::App app("timeouts");
  app.config().set("ODD_EXECUTOR_TYPE", "process");
  for (const std::string text : {" 5", "\t5", "0x1p-3", "+-5", "inf", "nan"}) {
    app.config().set("ODD_EXECUTOR_TASK_TIMEOUT", text);
    const std::string what =
        message_of<std::invalid_argument>([&] { webexec::Executor e(app, "odd"); });
    EXPECT_TRUE(contains(what, "ODD_EXECUTOR_TASK_TIMEOUT")) << what;
    EXPECT_TRUE(contains(what, "is not a number")) << text << ": " << what;
  }
  app.config().set("ODD_EXECUTOR_TASK_TIMEOUT", "1e10");
  const std::string what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "odd"); });
  EXPECT_EQ(what, "ODD_EXECUTOR_TASK_TIMEOUT='1e10' is above the maximum of 31536000 s");
}

TEST(ExecutorConfigTest, WorkerProcessesAreBounded) {
  // 65536 worker processes used to be accepted.
  webexec::App app("workers");
  app.config().set("MANY_EXECUTOR_TYPE", "process");
  app.config().set("MANY_EXECUTOR_MAX_WORKERS", 65536);
  std::string what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "many"); });
  EXPECT_EQ(what,
            "MANY_EXECUTOR_MAX_WORKERS=65536 is above the maximum of 256 worker processes "
            "(EXECUTOR_TYPE=process)");
  app.config().set("MANY_EXECUTOR_MAX_WORKERS", webexec::max_worker_processes + 1);
  EXPECT_THROW(webexec::Executor e(app, "many"), std::out_of_range);
  EXPECT_FALSE(app.has_extension("manyexecutor"));
}

TEST(ExecutorConfigTest, WorkerThreadsKeepTheirOwnBound) {
  webexec::App app("workers");
  app.config().set("THREADS_EXECUTOR_MAX_WORKERS", webexec::max_worker_processes + 1);
  const webexec::Executor threads(app, "threads");  // threads start on demand
  EXPECT_EQ(threads.max_workers(), webexec::max_worker_processes + 1);

  app.config().set("HUGE_EXECUTOR_MAX_WORKERS", webexec::max_worker_threads + 1);
  const std::string what = message_of<std::out_of_range>([&] { webexec::Executor e(app, "huge"); });
  EXPECT_EQ(what,
            "HUGE_EXECUTOR_MAX_WORKERS=65537 is above the maximum of 65536 worker threads "
            "(EXECUTOR_TYPE=thread)");
}

// ---------------------------------------------------------------- issue 9 item 16

TEST(ExecutorConfigTest, ErrorsTruncateAndEscapeTheValue) {
  // A 100 KB value with control characters used to be echoed verbatim.
  webexec::App app("echo");
  std::string value = "\x1b[2J\nforged line\xff";
  value += std::string(100000, 'x');
  app.config().set("EXECUTOR_MAX_WORKERS", value);
  const std::string what = message_of<std::invalid_argument>([&] { webexec::Executor e(app); });
  EXPECT_LT(what.size(), 400U) << what.size();
  EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  EXPECT_EQ(what.find('\x1b'), std::string::npos) << what;
  EXPECT_TRUE(contains(what, "EXECUTOR_MAX_WORKERS='\\x1b[2J\\nforged line\\xffxxx")) << what;
  EXPECT_TRUE(contains(what, "'... (100017 bytes) is not an integer")) << what;
}

TEST(ExecutorConfigTest, EscapeTextKeepsUtf8AndEscapesTheRest) {
  EXPECT_EQ(webexec::escape_text("caf\xc3\xa9 \xe2\x98\x95"), "caf\xc3\xa9 \xe2\x98\x95");
  EXPECT_EQ(webexec::escape_text("a\tb\r\n\\'\x7f\x01"), "a\\tb\\r\\n\\\\\\'\\x7f\\x01");
  EXPECT_EQ(webexec::escape_text("\xc0\xaf\xed\xa0\x80\xff"),
            "\\xc0\\xaf\\xed\\xa0\\x80\\xff");                                // overlong, surrogate
  EXPECT_EQ(webexec::escape_text("\xe2\x80\xae\xc2\x85"), "\\u202e\\u0085");  // bidi, NEL
  EXPECT_EQ(webexec::quote_value("abcdef", 4), "'abcd'... (6 bytes)");
  // Never cut inside a character.
  EXPECT_EQ(webexec::quote_value("ab\xe2\x98\x95", 4), "'ab'... (5 bytes)");
}

/// Collects an app's log messages.
class LogCapture {
 public:
  explicit LogCapture(webexec::App& app) {
    app.set_logger([this](webexec::LogLevel level, std::string_view message) {
      const std::lock_guard lock(mutex_);
      lines_.push_back(std::string(webexec::to_string(level)) + ": " + std::string(message));
    });
  }
  std::vector<std::string> lines() {
    const std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

TEST(ExecutorConfigTest, MisspeltAppConfigKeysWarnNamingTheNearestKey) {
  // EXECUTOR_MAX_WORKER and CUSTOM_EXECUTOR_TIMEOUT used to be ignored silently.
  webexec::App app("typos");
  LogCapture log(app);
  app.config().set("EXECUTOR_MAX_WORKER", 2);
  app.config().set("CUSTOM_EXECUTOR_TIMEOUT", 5);
  app.config().set("OTHER_EXECUTOR_MAX_WORKERS", 3);  // another executor's key: fine
  app.config().set("UNRELATED", 1);
  const webexec::Executor unnamed(app);
  EXPECT_EQ(log.lines(), (std::vector<std::string>{
                             "warning: executor '': unknown config key EXECUTOR_MAX_WORKER is "
                             "ignored; did you mean EXECUTOR_MAX_WORKERS?"}));
  const webexec::Executor custom(app, "custom");
  ASSERT_EQ(log.lines().size(), 2U);
  EXPECT_EQ(log.lines()[1],
            "warning: executor 'custom': unknown config key CUSTOM_EXECUTOR_TIMEOUT is ignored; "
            "did you mean CUSTOM_EXECUTOR_TASK_TIMEOUT?");
}

TEST(ExecutorConfigTest, MisspeltEnvironmentVariablesWarnOnlyWhenShapedLikeOurs) {
  const ScopedEnv typo("ENVTYPO_EXECUTOR_PROPAGATE_EXCEPTION", "1");
  const ScopedEnv jenkins("EXECUTOR_NUMBER", "3");  // unrelated: no warning
  webexec::App app("env");
  LogCapture log(app);
  const webexec::Executor unnamed(app);
  EXPECT_TRUE(log.lines().empty()) << log.lines()[0];
  const webexec::Executor named(app, "envtypo");
  EXPECT_EQ(log.lines(), (std::vector<std::string>{
                             "warning: executor 'envtypo': unknown environment variable "
                             "ENVTYPO_EXECUTOR_PROPAGATE_EXCEPTION is ignored; did you mean "
                             "ENVTYPO_EXECUTOR_PROPAGATE_EXCEPTIONS?"}));
}

TEST(ExecutorConfigTest, DefaultLoggerWritesOneEscapedLineToStderr) {
  const webexec::App app("logger");
  testing::internal::CaptureStderr();
  app.log(webexec::LogLevel::warning, "two\nlines");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "webexec: app 'logger': warning: two\\nlines\n");
}

// ---------------------------------------------------------------- issue 9 item 17

TEST(ExecutorConfigTest, ASecondExecutorWithTheSameNameIsAnError) {
  // It used to replace the first in app.extensions, and its destruction then
  // removed the entry although the first executor still lived.
  webexec::App app("dups");
  webexec::Executor first(app, "dup");
  {
    const std::string what =
        message_of<webexec::InvalidStateError>([&] { webexec::Executor second(app, "dup"); });
    EXPECT_TRUE(contains(what, "already has an executor named 'dup'")) << what;
  }
  EXPECT_EQ(app.extension<webexec::Executor>("dupexecutor").get(), &first);
  webexec::Executor unnamed_one(app);
  EXPECT_THROW(webexec::Executor unnamed_two(app), webexec::InvalidStateError);
  EXPECT_EQ(app.extension<webexec::Executor>("executor").get(), &unnamed_one);
  EXPECT_EQ(first.submit([] { return 7; }).result(), 7);
}

TEST(ExecutorConfigTest, DestroyingAnExecutorRemovesOnlyItsOwnEntry) {
  webexec::App app("owner");
  auto replacement = std::make_shared<int>(5);
  {
    const webexec::Executor executor(app, "owned");
    app.set_extension("ownedexecutor", replacement);  // the app's owner replaced it
  }
  EXPECT_EQ(app.extension<int>("ownedexecutor"), replacement);
  {
    const webexec::Executor executor(app, "mine");
    EXPECT_TRUE(app.has_extension("mineexecutor"));
  }
  EXPECT_FALSE(app.has_extension("mineexecutor"));
}

}  // namespace
