// The job pattern over real HTTP: accepted() (202 + Location + key) and
// mount_status_routes() (GET state/progress/result/error, DELETE cancels), against a
// real httplib::Server on 127.0.0.1 and a real httplib::Client. One worker, so a job
// blocked on a gate keeps the next one PENDING.
#include <atomic>
#include <cctype>
#include <stdexcept>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/http/httplib_adapter.hpp"

#include "support/http_server.hpp"

namespace {

using nlohmann::json;
using webexec_test::Gate;
using webexec_test::HttpServer;
using webexec_test::kPatience;

/// A result type with no JSON form.
struct Opaque {
  int value = 0;
};

bool is_job_key(const std::string& key) {
  if (key.size() != 32) return false;
  for (const char c : key) {
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

class JobRoutesTest : public ::testing::Test {
 protected:
  JobRoutesTest() {
    app.config().set("EXECUTOR_MAX_WORKERS", 1);
    executor.init_app(app);
    auto& server = http.server();
    webexec::http::install(server, app);

    // Signals that it runs, then blocks until `release` opens.
    server.Post("/work/wait", [this](const httplib::Request&, httplib::Response& res) {
      submit(res, [this, running = running.handle(), release = release.handle()] {
        ++wait_jobs_run;
        running.open();
        (void)release.wait();
        return json{{"waited", true}};
      });
    });
    // Reports progress, signals, then blocks until `release` opens.
    server.Post("/work/progress", [this](const httplib::Request&, httplib::Response& res) {
      submit(res, [progressed = progressed.handle(), release = release.handle()] {
        webexec::report_progress(3, 10, "step 3");
        progressed.open();
        (void)release.wait();
        return json{{"answer", 42}};
      });
    });
    server.Post("/work/fail", [this](const httplib::Request&, httplib::Response& res) {
      submit(res, []() -> int { throw std::runtime_error("disk full"); });
    });
    server.Post("/work/value", [this](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.get_param_value("n"));
      submit(res, [this, n] {
        ++value_jobs_run;
        return n * 2;
      });
    });
    server.Post("/work/opaque", [this](const httplib::Request&, httplib::Response& res) {
      submit(res, [] { return Opaque{7}; });
    });
    // This test shows failed jobs' messages (hidden by default).
    webexec::http::mount_status_routes(server, executor, "/jobs", {.expose_error_messages = true});
    http.start();
  }

  template <typename Fn>
  void submit(httplib::Response& res, Fn fn) {
    const std::string key = webexec::http::new_job_key();
    executor.submit_stored(key, std::move(fn));
    webexec::http::accepted(res, key, "/jobs");
  }

  /// POSTs to `path` and returns the job key (asserting 202 + Location).
  std::string start(httplib::Client& cli, const std::string& path) {
    auto res = cli.Post(path);
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return {};
    EXPECT_EQ(res->status, 202) << res->body;
    const std::string key = json::parse(res->body).at("key");
    EXPECT_EQ(res->get_header_value("Location"), "/jobs/" + key);
    return key;
  }

  /// GETs /jobs/<key>, expecting `status`; returns the JSON body.
  static json status_of(httplib::Client& cli, const std::string& key, int status = 200) {
    auto res = cli.Get("/jobs/" + key);
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return json();
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    return json::parse(res->body);
  }

  /// Waits (up to kPatience) until the stored job `key` is done.
  bool wait_done(const std::string& key) {
    auto f = executor.futures().get(key);
    return f && f->wait(kPatience);
  }

  webexec::App app{"jobs-test"};
  std::atomic<int> wait_jobs_run{0};
  std::atomic<int> value_jobs_run{0};
  webexec::Executor executor;
  // Declared after the executor: destroyed (so opened) before it joins its worker.
  Gate running;
  Gate progressed;
  Gate release;
  HttpServer http;
};

TEST_F(JobRoutesTest, AcceptedAnswers202WithLocationRetryAfterAndKey) {
  auto cli = http.client();
  auto res = cli.Post("/work/value?n=21");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 202);
  const json body = json::parse(res->body);
  const std::string key = body.at("key");
  EXPECT_TRUE(is_job_key(key)) << key;
  EXPECT_EQ(res->get_header_value("Location"), "/jobs/" + key);
  EXPECT_EQ(body.at("status_url"), "/jobs/" + key);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  EXPECT_TRUE(executor.futures().contains(key));

  ASSERT_TRUE(wait_done(key));
  auto status = cli.Get(res->get_header_value("Location"));
  ASSERT_TRUE(status) << httplib::to_string(status.error());
  EXPECT_EQ(status->status, 200);
  EXPECT_FALSE(status->has_header("Retry-After")) << "no Retry-After once finished";
  const json done = json::parse(status->body);
  EXPECT_EQ(done.at("key"), key);
  EXPECT_EQ(done.at("state"), "FINISHED");
  EXPECT_EQ(done.at("result"), 42);
}

TEST_F(JobRoutesTest, AcceptedEncodesTheKeyInLocation) {
  httplib::Response res;
  webexec::http::accepted(res, "a b/c?d", "/api/jobs");
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.get_header_value("Location"), "/api/jobs/a%20b%2Fc%3Fd");
  EXPECT_EQ(json::parse(res.body), json::parse(R"({"key":"a b/c?d",
                                                   "status_url":"/api/jobs/a%20b%2Fc%3Fd"})"));
}

TEST_F(JobRoutesTest, LocationOfAnyStoredKeyLeadsToItsStatus) {
  auto cli = http.client();
  for (const std::string key : {"plain-key", "with space", "percent%41", "q?x=1", "slash/inside"}) {
    SCOPED_TRACE(key);
    executor.submit_stored(key, [] { return 1; });
    ASSERT_TRUE(wait_done(key));
    httplib::Response accepted;
    webexec::http::accepted(accepted, key, "/jobs");
    const std::string location = accepted.get_header_value("Location");

    auto res = cli.Get(location);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200) << location << " -> " << res->body;
    if (res->status == 200) {
      EXPECT_EQ(json::parse(res->body).at("key"), key);
    }
    auto del = cli.Delete(location);
    ASSERT_TRUE(del) << httplib::to_string(del.error());
    EXPECT_EQ(del->status, 409) << location << " -> " << del->body;
  }
}

TEST_F(JobRoutesTest, StatusShowsRunningAndPendingThenFinishedWithResult) {
  auto cli = http.client();
  const std::string a = start(cli, "/work/wait");
  ASSERT_TRUE(running.wait()) << "job A never started";
  const std::string b = start(cli, "/work/value?n=5");  // the only worker is busy with A

  auto res_a = cli.Get("/jobs/" + a);
  ASSERT_TRUE(res_a) << httplib::to_string(res_a.error());
  EXPECT_EQ(res_a->status, 200);
  EXPECT_EQ(res_a->get_header_value("Retry-After"), "1");
  const json running_a = json::parse(res_a->body);
  EXPECT_EQ(running_a.at("key"), a);
  EXPECT_EQ(running_a.at("state"), "RUNNING");
  EXPECT_TRUE(running_a.at("progress").is_null());
  EXPECT_FALSE(running_a.contains("result"));
  EXPECT_FALSE(running_a.contains("error"));

  const json pending_b = status_of(cli, b);
  EXPECT_EQ(pending_b.at("state"), "PENDING");
  EXPECT_FALSE(pending_b.contains("result"));

  release.open();
  ASSERT_TRUE(wait_done(a));
  ASSERT_TRUE(wait_done(b));
  const json done_a = status_of(cli, a);
  EXPECT_EQ(done_a.at("state"), "FINISHED");
  EXPECT_EQ(done_a.at("result"), json::parse(R"({"waited":true})"));
  const json done_b = status_of(cli, b);
  EXPECT_EQ(done_b.at("state"), "FINISHED");
  EXPECT_EQ(done_b.at("result"), 10);
}

TEST_F(JobRoutesTest, StatusShowsProgressWhileRunning) {
  auto cli = http.client();
  const std::string key = start(cli, "/work/progress");
  ASSERT_TRUE(progressed.wait()) << "the job never reported progress";

  const json mid = status_of(cli, key);
  EXPECT_EQ(mid.at("state"), "RUNNING");
  const json& progress = mid.at("progress");
  ASSERT_TRUE(progress.is_object()) << mid;
  EXPECT_DOUBLE_EQ(progress.at("fraction").get<double>(), 0.3);
  EXPECT_EQ(progress.at("done"), 3);
  EXPECT_EQ(progress.at("total"), 10);
  EXPECT_EQ(progress.at("message"), "step 3");

  release.open();
  ASSERT_TRUE(wait_done(key));
  const json done = status_of(cli, key);
  EXPECT_EQ(done.at("state"), "FINISHED");
  EXPECT_EQ(done.at("result"), json::parse(R"({"answer":42})"));
  EXPECT_EQ(done.at("progress").at("done"), 3) << "the last report stays readable";
}

TEST_F(JobRoutesTest, FailingTaskShowsErrorTypeAndMessage) {
  auto cli = http.client();
  const std::string key = start(cli, "/work/fail");
  ASSERT_TRUE(wait_done(key));
  const json st = status_of(cli, key);
  EXPECT_EQ(st.at("state"), "FINISHED");
  ASSERT_TRUE(st.contains("error")) << st;
  EXPECT_EQ(st.at("error").at("type"), "std::runtime_error");
  EXPECT_EQ(st.at("error").at("message"), "disk full");
  EXPECT_FALSE(st.contains("result"));
}

TEST_F(JobRoutesTest, ResultWithoutJsonFormIsNullWithItsType) {
  auto cli = http.client();
  const std::string key = start(cli, "/work/opaque");
  ASSERT_TRUE(wait_done(key));
  const json st = status_of(cli, key);
  EXPECT_EQ(st.at("state"), "FINISHED");
  EXPECT_TRUE(st.at("result").is_null());
  EXPECT_NE(st.at("result_type").get<std::string>().find("Opaque"), std::string::npos) << st;
}

TEST_F(JobRoutesTest, UnknownKeyIs404) {
  auto cli = http.client();
  const json st = status_of(cli, "no-such-job", 404);
  EXPECT_EQ(st.at("key"), "no-such-job");
  EXPECT_TRUE(st.contains("error"));
}

TEST_F(JobRoutesTest, DeletePendingJobCancelsItAndItNeverRuns) {
  auto cli = http.client();
  const std::string a = start(cli, "/work/wait");
  ASSERT_TRUE(running.wait()) << "job A never started";
  const std::string b = start(cli, "/work/value?n=1");
  ASSERT_EQ(status_of(cli, b).at("state"), "PENDING");

  auto del = cli.Delete("/jobs/" + b);
  ASSERT_TRUE(del) << httplib::to_string(del.error());
  EXPECT_EQ(del->status, 200) << del->body;
  EXPECT_EQ(json::parse(del->body),
            json({{"key", b}, {"cancelled", true}, {"state", "CANCELLED"}}));
  const json after = status_of(cli, b);
  EXPECT_EQ(after.at("state"), "CANCELLED");
  EXPECT_FALSE(after.contains("result"));

  release.open();
  ASSERT_TRUE(wait_done(a));
  // The single worker has finished A; had B not been cancelled it would run next.
  // Submitting C and waiting for it proves the worker moved past B's slot.
  const std::string c = start(cli, "/work/value?n=2");
  ASSERT_TRUE(wait_done(c));
  EXPECT_EQ(status_of(cli, c).at("result"), 4);
  EXPECT_EQ(value_jobs_run.load(), 1) << "only C ran; the cancelled B never did";
  EXPECT_EQ(status_of(cli, b).at("state"), "CANCELLED");
}

TEST_F(JobRoutesTest, DeleteRunningJobIs409AndItCompletes) {
  auto cli = http.client();
  const std::string a = start(cli, "/work/wait");
  ASSERT_TRUE(running.wait()) << "job A never started";

  auto del = cli.Delete("/jobs/" + a);
  ASSERT_TRUE(del) << httplib::to_string(del.error());
  EXPECT_EQ(del->status, 409) << del->body;
  EXPECT_EQ(json::parse(del->body), json({{"key", a}, {"cancelled", false}, {"state", "RUNNING"}}));
  EXPECT_EQ(status_of(cli, a).at("state"), "RUNNING");

  release.open();
  ASSERT_TRUE(wait_done(a));
  const json done = status_of(cli, a);
  EXPECT_EQ(done.at("state"), "FINISHED");
  EXPECT_EQ(done.at("result"), json::parse(R"({"waited":true})"));

  // A finished job cannot be cancelled either.
  auto again = cli.Delete("/jobs/" + a);
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(again->status, 409);
  EXPECT_EQ(json::parse(again->body).at("state"), "FINISHED");
  EXPECT_EQ(wait_jobs_run.load(), 1);
}

TEST_F(JobRoutesTest, DeleteUnknownKeyIs404) {
  auto cli = http.client();
  auto del = cli.Delete("/jobs/no-such-job");
  ASSERT_TRUE(del) << httplib::to_string(del.error());
  EXPECT_EQ(del->status, 404);
  const json body = json::parse(del->body);
  EXPECT_EQ(body.at("key"), "no-such-job");
  EXPECT_TRUE(body.contains("error"));
}

}  // namespace
