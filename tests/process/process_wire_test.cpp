// The process engine's transport (Step 4, issue 8 items 1-3): bytes that are
// not UTF-8 cross intact both ways, large payloads never deadlock the pool,
// deadlines fire during big transfers, payload limits fail one future with
// a clear error, and frames of the right shape with wrong field types do
// not bring down the host. Frames are built by hand here from the format
// documented in src/process/wire.hpp and docs/design.md.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/detail/process_pool.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/future.hpp"
#include "webexec/job_registry.hpp"
#include "webexec/process/fork_server.hpp"

#include "process/process_support.hpp"

namespace {

using namespace std::chrono_literals;
using webexec_test::Contains;
using webexec_test::kResultPatience;

/// Every byte value, NUL included, then the high half again.
std::string all_bytes() {
  std::string out;
  for (int i = 0; i < 256; ++i) out.push_back(static_cast<char>(i));
  for (int i = 0x80; i < 0x100; ++i) out.push_back(static_cast<char>(i));
  return out;
}

// ------------------------------------------------------------------ jobs

/// Returns its argument reversed, so the result is a different string of
/// the same bytes.
std::string reverse_bytes(std::string s) { return {s.rbegin(), s.rend()}; }
WEBEXEC_REGISTER_JOB("wire.reverse", reverse_bytes);

int throw_bytes(std::string message) { throw std::runtime_error(message); }
WEBEXEC_REGISTER_JOB("wire.throw", throw_bytes);

/// What the job sees of its request and g, as one string per field.
std::vector<std::string> request_bytes() {
  std::vector<std::string> out;
  const webexec::RequestContext& r = webexec::current_request();
  out.push_back(r.body);
  out.push_back(r.headers.at(0).second);
  out.push_back(r.query.at(0).second);
  out.push_back(r.path);
  out.push_back(webexec::g().get<std::string>("raw"));
  return out;
}
WEBEXEC_REGISTER_JOB("wire.request_bytes", request_bytes);

/// A string of `n` bytes made from its argument's size (a big result).
std::string blob(std::string arg, std::int64_t n) {
  return std::string(static_cast<std::size_t>(n), static_cast<char>('a' + arg.size() % 26));
}
WEBEXEC_REGISTER_JOB("wire.blob", blob);

int sleep_ms(std::int64_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return 1;
}
WEBEXEC_REGISTER_JOB("wire.sleep", sleep_ms);

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

/// One frame, as docs/design.md describes it.
std::string frame(std::uint8_t kind, std::uint64_t id, const std::string& body,
                  std::uint64_t length_override = 0) {
  std::string out;
  put_le(out, length_override != 0 ? length_override : 12 + body.size(), 4);
  out.push_back(1);  // version
  out.push_back(static_cast<char>(kind));
  put_le(out, 0, 2);
  put_le(out, id, 8);
  return out + body;
}

std::string cbor(const nlohmann::json& j) {
  const auto bytes = nlohmann::json::to_cbor(j);
  return {bytes.begin(), bytes.end()};
}

void write_channel(const std::string& bytes) {
  const int fd = webexec::process::detail::current_worker_fd();
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

/// Writes a hand-made frame for its own job, then returns 7 (the host must
/// have failed the job or killed the worker before it sees that).
int forge(std::string how) {
  const std::uint64_t id = webexec::detail::current_worker_job_id();
  if (how == "error-types") {
    write_channel(frame(6, id, cbor({{"type", 5}, {"message", {1, 2}}})));
  } else if (how == "progress-types") {
    write_channel(frame(4, id, cbor({{"fraction", "half"}, {"message", 3}})));
  } else if (how == "progress-huge-int") {
    write_channel(frame(4, id, cbor({{"fraction", 0.5}, {"message", ""}, {"done", 1ULL << 63}})));
  } else if (how == "result-type") {
    write_channel(frame(5, id, cbor("not an int")));
  } else if (how == "not-a-map") {
    write_channel(frame(6, id, cbor(nlohmann::json::array({1, 2}))));
  } else if (how == "deep") {
    write_channel(frame(5, id, std::string(100000, '\x81') + std::string(1, '\x00')));
  } else if (how == "huge-array") {
    // Found by fuzz/frame_fuzzer.cpp: an array declaring 2^64-1 elements
    // made nlohmann's DOM builder throw out_of_range.408.
    write_channel(frame(5, id, std::string("\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 9)));
  } else if (how == "host-kind") {
    write_channel(frame(1, id, cbor(nullptr)));
  } else if (how == "version") {
    std::string f = frame(5, id, cbor(1));
    f[4] = 9;
    write_channel(f);
  } else if (how == "oversized") {
    write_channel(frame(5, id, "", 0xFFFFFFFFULL));
  }
  // A valid result completes the job: the worker may go on. Otherwise the
  // host must kill it; wait for that (bounded, so a bug fails the test).
  if (how != "result-type") std::this_thread::sleep_for(30s);
  return 7;
}
WEBEXEC_REGISTER_JOB("wire.forge", forge);

/// A request whose fields hold bytes that are not UTF-8 (Latin-1 and what
/// `?x=%FF` decodes to).
class RawRequest : public webexec::detail::RequestScope {
 public:
  explicit RawRequest(webexec::App* app) : RequestScope(app) {}

 protected:
  [[nodiscard]] std::shared_ptr<const webexec::RequestContext> build_snapshot() const override {
    auto r = std::make_shared<webexec::RequestContext>();
    r->method = "POST";
    r->path = "/caf\xe9";
    r->query = {{"x", "\xff"}};
    r->headers = {{"X-Name", "Jos\xe9 M\xfcller"}};
    r->body = all_bytes();
    return r;
  }
};

void configure(webexec::App& app, int workers) {
  app.config().set("EXECUTOR_TYPE", "process");
  app.config().set("EXECUTOR_MAX_WORKERS", workers);
}

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
  ADD_FAILURE() << "succeeded";
  return {};
}

// ------------------------------------------------------------------ item 1: bytes

TEST(ProcessWireTest, ArgumentsResultsAndErrorsKeepEveryByte) {
  webexec::App app("wire-bytes");
  configure(app, 1);
  webexec::Executor executor(app);
  const std::string bytes = all_bytes();
  EXPECT_EQ(executor.submit(reverse_bytes, bytes).result(kResultPatience),
            std::string(bytes.rbegin(), bytes.rend()));
  EXPECT_EQ(executor.submit(reverse_bytes, std::string(1, '\0')).result(kResultPatience),
            std::string(1, '\0'));

  // what() is a C string: the message keeps every byte but NUL.
  const std::string message = bytes.substr(1);
  auto failing = executor.submit(throw_bytes, message);
  try {
    static_cast<void>(failing.result(kResultPatience));
    ADD_FAILURE() << "succeeded";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_EQ(e.message(), message);
    EXPECT_EQ(e.type(), "std::runtime_error");
  }
}

TEST(ProcessWireTest, RequestBodyHeaderQueryAndGKeepEveryByte) {
  webexec::App app("wire-request");
  configure(app, 1);
  webexec::Executor executor(app);
  RawRequest request(&app);
  std::vector<std::string> seen;
  {
    const webexec::detail::ScopedRequest scope(&request);
    request.g().set("raw", std::string("\xc0\xaf\xff\x00z", 5));
    seen = executor.submit(request_bytes).result(kResultPatience);
  }
  ASSERT_EQ(seen.size(), 5U);
  EXPECT_EQ(seen[0], all_bytes());
  EXPECT_EQ(seen[1], "Jos\xe9 M\xfcller");
  EXPECT_EQ(seen[2], "\xff");
  EXPECT_EQ(seen[3], "/caf\xe9");
  EXPECT_EQ(seen[4], std::string("\xc0\xaf\xff\x00z", 5));
}

/// A worker's frame of the right shape with fields of the wrong type fails
/// that job (and replaces the worker); the host and the next job are fine.
void expect_forged_frame_handled(const std::string& how, const std::string& expected) {
  webexec::App app("wire-forge");
  configure(app, 1);
  webexec::Executor executor(app);
  auto forged = executor.submit(forge, how);
  const std::string error = [&] {
    try {
      static_cast<void>(forged.result(kResultPatience));
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("succeeded");
  }();
  EXPECT_TRUE(Contains(error, expected)) << how;
  // "result-type": the worker goes on to send its real result, a stray
  // frame that gets it killed; if it claimed the next job first, that job
  // fails (a claimed job is never run again) and the one after heals.
  auto next = executor.submit(reverse_bytes, std::string("ok"));
  if (how == "result-type") {
    try {
      static_cast<void>(next.result(kResultPatience));
    } catch (const webexec::BrokenProcessPool&) {
      next = executor.submit(reverse_bytes, std::string("ok"));
    }
  }
  EXPECT_EQ(next.result(kResultPatience), "ko");
}

TEST(ProcessWireTest, ErrorFrameWithWrongTypesFailsOnlyItsJob) {
  expect_forged_frame_handled("error-types", "malformed");
}
TEST(ProcessWireTest, ProgressFrameWithWrongTypesFailsOnlyItsJob) {
  expect_forged_frame_handled("progress-types", "malformed");
}
TEST(ProcessWireTest, ProgressFrameWithOutOfRangeIntegerFailsOnlyItsJob) {
  expect_forged_frame_handled("progress-huge-int", "malformed");
}
TEST(ProcessWireTest, ResultOfTheWrongTypeFailsOnlyItsJob) {
  expect_forged_frame_handled("result-type", "type must be number");
}
TEST(ProcessWireTest, ErrorFrameThatIsNoMapFailsOnlyItsJob) {
  expect_forged_frame_handled("not-a-map", "malformed");
}
TEST(ProcessWireTest, DeeplyNestedBodyFailsOnlyItsJob) {
  expect_forged_frame_handled("deep", "nests deeper");
}
TEST(ProcessWireTest, ArrayDeclaringMoreElementsThanBytesFailsOnlyItsJob) {
  expect_forged_frame_handled("huge-array", "malformed");
}
TEST(ProcessWireTest, HostOnlyKindFailsOnlyItsJob) {
  expect_forged_frame_handled("host-kind", "only the host sends");
}
TEST(ProcessWireTest, WrongVersionFailsOnlyItsJob) {
  expect_forged_frame_handled("version", "wire version 9");
}

// ------------------------------------------------------------------ item 2: sizes

/// `jobs` jobs with `size`-byte arguments and results on 2 workers: all
/// resolve, and shutdown returns.
void expect_large_payloads_flow(int jobs, std::size_t size) {
  webexec::App app("wire-large");
  configure(app, 2);
  auto executor = std::make_unique<webexec::Executor>(app);
  std::vector<webexec::Future<std::string>> futures;
  for (int i = 0; i < jobs; ++i) {
    futures.push_back(executor->submit(blob, std::string(size + static_cast<std::size_t>(i), 'x'),
                                       static_cast<std::int64_t>(size)));
  }
  for (int i = 0; i < jobs; ++i) {
    const std::string result = futures[static_cast<std::size_t>(i)].result(kResultPatience);
    ASSERT_EQ(result.size(), size) << i;
    EXPECT_EQ(result[0], static_cast<char>('a' + (size + static_cast<std::size_t>(i)) % 26)) << i;
  }
  executor->shutdown(true);
  executor.reset();
}

TEST(ProcessWireTest, SixteenJobsOf256KiBResolve) { expect_large_payloads_flow(16, 256U << 10U); }
TEST(ProcessWireTest, ThirtyTwoJobsOf256KiBResolve) { expect_large_payloads_flow(32, 256U << 10U); }
TEST(ProcessWireTest, SixteenJobsOf1MiBResolve) { expect_large_payloads_flow(16, 1U << 20U); }
TEST(ProcessWireTest, ThirtyTwoJobsOf1MiBResolve) { expect_large_payloads_flow(32, 1U << 20U); }

TEST(ProcessWireTest, TimeoutFiresWhileBigArgumentsWaitForTheWorker) {
  webexec::App app("wire-timeout");
  configure(app, 1);
  webexec::Executor executor(app);
  // The only worker sleeps (reads nothing) while 8 MiB of arguments queue
  // up for it: the host must not block on the full socket. (Only the
  // sleeper has a time limit: decoding 1 MiB is slow under sanitizers.)
  auto sleeper =
      executor.job("wire.sleep", sleep_ms).with_timeout(300ms).submit(std::int64_t{20000});
  std::vector<webexec::Future<std::string>> big;
  for (int i = 0; i < 8; ++i) {
    big.push_back(executor.submit(blob, std::string(1U << 20U, 'y'), std::int64_t{10}));
  }
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(sleeper.wait(15s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_TRUE(Contains(error_of<webexec::TimeoutError>(sleeper), "time limit"));
  for (auto& f : big) EXPECT_EQ(f.result(kResultPatience).size(), 10U);
}

// ------------------------------------------------------------------ item 3: limits

TEST(ProcessWireTest, OversizedJobFailsAtSubmitNamingSizeAndLimit) {
  webexec::App app("wire-limit");
  configure(app, 1);
  app.config().set("EXECUTOR_MAX_PAYLOAD", 1 << 20);
  webexec::Executor executor(app);
  auto future = executor.submit(blob, std::string(2U << 20U, 'z'), std::int64_t{1});
  ASSERT_TRUE(future.done());  // nothing ran, nothing was queued
  const std::string error = error_of<webexec::PayloadTooLargeError>(future);
  EXPECT_TRUE(Contains(error, "EXECUTOR_MAX_PAYLOAD = 1048576 bytes"));
  EXPECT_TRUE(Contains(error, "job 'wire.blob' is 2097"));  // 2 MiB and a few bytes
  EXPECT_TRUE(executor.worker_pids().empty());
  EXPECT_EQ(executor.submit(blob, std::string("a"), std::int64_t{3}).result(kResultPatience),
            "bbb");
}

TEST(ProcessWireTest, OversizedResultFailsOnlyItsJob) {
  webexec::App app("wire-limit-result");
  configure(app, 1);
  app.config().set("EXECUTOR_MAX_PAYLOAD", 1 << 20);
  webexec::Executor executor(app);
  auto future = executor.submit(blob, std::string(), std::int64_t{2 << 20});
  try {
    static_cast<void>(future.result(kResultPatience));
    ADD_FAILURE() << "succeeded";
  } catch (const webexec::RemoteTaskError& e) {
    EXPECT_EQ(e.type(), "webexec::PayloadTooLargeError");
    EXPECT_TRUE(Contains(e.message(), "over EXECUTOR_MAX_PAYLOAD = 1048576 bytes"));
    EXPECT_TRUE(Contains(e.message(), "is 2097"));
  }
  EXPECT_EQ(executor.submit(blob, std::string(), std::int64_t{2}).result(kResultPatience), "aa");
}

TEST(ProcessWireTest, OversizedFrameFromAWorkerFailsItsJobAndReplacesTheWorker) {
  webexec::App app("wire-limit-frame");
  configure(app, 1);
  webexec::Executor executor(app);
  auto forged = executor.submit(forge, std::string("oversized"));
  const std::string error = error_of<webexec::BrokenProcessPool>(forged);
  EXPECT_TRUE(Contains(error, "sent a frame of 4294967283 bytes"));
  EXPECT_TRUE(Contains(error, "over EXECUTOR_MAX_PAYLOAD"));
  EXPECT_TRUE(Contains(error, "killed and replaced"));
  EXPECT_EQ(executor.submit(reverse_bytes, std::string("ab")).result(kResultPatience), "ba");
}

TEST(ProcessWireTest, MaxPayloadIsValidated) {
  for (const char* bad : {"0", "-1", "1073741825", "abc"}) {
    webexec::App app("wire-limit-bad");
    configure(app, 1);
    app.config().set("EXECUTOR_MAX_PAYLOAD", std::string(bad));
    webexec::Executor executor;
    EXPECT_ANY_THROW(executor.init_app(app)) << bad;  // out_of_range or invalid_argument
  }
}

}  // namespace

int main(int argc, char** argv) {
  webexec::process::start_fork_server();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
