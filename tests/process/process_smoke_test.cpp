// Smallest end-to-end check of EXECUTOR_TYPE=process; the full suite is in
// the other files of this directory.
#include <gtest/gtest.h>

#include "webexec/executor.hpp"
#include "webexec/process/fork_server.hpp"

namespace {

int add(int a, int b) { return a + b; }
WEBEXEC_REGISTER_JOB("smoke.add", add);

TEST(ProcessSmokeTest, RegisteredFunctionRunsInAWorkerProcess) {
  webexec::App app("smoke");
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
  webexec::Executor executor(app);
  EXPECT_EQ(executor.submit(add, 2, 3).result(), 5);
  ASSERT_EQ(executor.worker_pids().size(), 1U);
  EXPECT_NE(executor.worker_pids().front(), getpid());
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
