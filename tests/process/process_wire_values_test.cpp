// Values at the edges of the process engine's CBOR codec, through real
// workers: binary values with a subtype (nlohmann writes them as a CBOR
// tag) cross both ways, and values nested deeper than the wire's 512
// levels fail only their own job, where they are encoded (at submit for
// arguments, in the worker for results), without a worker being killed.
// Runs on the test's thread; the jobs run in worker processes.
#include <unistd.h>

#include <cstdint>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"

namespace {

using webexec_test::Contains;
using webexec_test::kResultPatience;

/// Its argument (a binary value) with subtype `subtype` (negative: none).
nlohmann::json tag_bytes(const nlohmann::json& in, std::int64_t subtype) {
  nlohmann::json out = in;
  if (subtype >= 0) {
    out.get_binary().set_subtype(static_cast<std::uint64_t>(subtype));
  } else {
    out.get_binary().clear_subtype();
  }
  return out;
}
WEBEXEC_REGISTER_JOB("wire_values.tag_bytes", tag_bytes);

/// Arrays nested `levels` deep around 1.
nlohmann::json nested(std::int64_t levels) {
  nlohmann::json out = 1;
  for (std::int64_t i = 0; i < levels; ++i) out = nlohmann::json::array({std::move(out)});
  return out;
}
WEBEXEC_REGISTER_JOB("wire_values.nested", nested);

std::int64_t pid() { return ::getpid(); }
WEBEXEC_REGISTER_JOB("wire_values.pid", pid);

std::int64_t ignore(const nlohmann::json& /*value*/) { return 0; }
WEBEXEC_REGISTER_JOB("wire_values.ignore", ignore);

void configure(webexec::App& app) {
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", 1);
}

// Regression: a result holding a binary value with a subtype had its worker
// killed as "malformed (a tag)" and the job failed with BrokenProcessPool
// (checked on 7e11dd2).
TEST(ProcessWireValuesTest, BinaryWithASubtypeCrossesBothWays) {
  webexec::App app("wire-values-binary");
  configure(app);
  webexec::Executor executor(app);
  const auto worker = executor.submit(pid).result(kResultPatience);
  const nlohmann::json in = nlohmann::json::binary({0, 1, 255}, 7);
  for (const std::int64_t subtype : {std::int64_t{-1}, std::int64_t{0}, std::int64_t{42},
                                     std::int64_t{70'000}, std::int64_t{1} << 40U}) {
    const nlohmann::json out = executor.submit(tag_bytes, in, subtype).result(kResultPatience);
    ASSERT_TRUE(out.is_binary());
    EXPECT_EQ(out, tag_bytes(in, subtype)) << subtype;  // bytes and subtype
    EXPECT_EQ(out.get_binary().has_subtype(), subtype >= 0);
    if (subtype >= 0) {
      EXPECT_EQ(out.get_binary().subtype(), static_cast<std::uint64_t>(subtype));
    }
  }
  EXPECT_EQ(executor.submit(pid).result(kResultPatience), worker);  // never replaced
}

// Regression: a result nested deeper than 512 levels was sent, refused by
// the host as malformed and its worker killed (BrokenProcessPool); an
// argument that deep reached the worker, which refused the frame and died
// (checked on 7e11dd2).
TEST(ProcessWireValuesTest, TooDeepValuesFailOnlyTheirJob) {
  webexec::App app("wire-values-deep");
  configure(app);
  webexec::Executor executor(app);
  const auto worker = executor.submit(pid).result(kResultPatience);
  EXPECT_EQ(executor.submit(nested, std::int64_t{512}).result(kResultPatience), nested(512));

  auto deep_result = executor.submit(nested, std::int64_t{513});
  try {
    static_cast<void>(deep_result.result(kResultPatience));
    ADD_FAILURE() << "succeeded";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_TRUE(Contains(e.message(), "nested deeper than 512 levels")) << e.message();
  }

  // Arguments travel inside the job's request (two levels), so 511 is too deep.
  auto deep_argument = executor.submit(ignore, nested(511));
  ASSERT_TRUE(deep_argument.done());  // failed at submit, never queued
  try {
    static_cast<void>(deep_argument.result(kResultPatience));
    ADD_FAILURE() << "succeeded";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(Contains(e.what(), "nested deeper than 512 levels")) << e.what();
  }
  EXPECT_EQ(executor.submit(ignore, nested(510)).result(kResultPatience), 0);
  EXPECT_EQ(executor.submit(pid).result(kResultPatience), worker);  // never replaced
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
