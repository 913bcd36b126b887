// How the adapter answers errors, against a real httplib::Server on 127.0.0.1 (issue 9
// item 11): int_param's 400 naming the parameter, CapacityError as 503 with
// Retry-After from any route (install and wrap), no exception text in any body unless
// the app asks for it, status routes that hide a failed job's message by default, and
// JSON that stays valid for keys that are not UTF-8.
#include <chrono>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"
#include "webexec/http/httplib_adapter.hpp"

#include "support/http_server.hpp"

namespace {

using nlohmann::json;
using webexec_test::Gate;
using webexec_test::HttpServer;
using webexec_test::kPatience;

constexpr const char* kSecret = "db password=hunter2";

/// One worker and room for one stored future, so a blocked job fills the collection.
class ErrorMappingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app.config().set("EXECUTOR_MAX_WORKERS", 1);
    app.config().set("EXECUTOR_FUTURES_MAX_LENGTH", 1);
    executor.init_app(app);
    app.set_error_handler([this](const webexec::ErrorReport&) { ++reported; });
  }

  /// Routes shared by the install and wrap variants.
  void add_routes(const std::function<httplib::Server::Handler(httplib::Server::Handler)>& w) {
    auto& server = http.server();
    server.Get("/steps", w([](const httplib::Request& req, httplib::Response& res) {
                 const auto steps = webexec::http::int_param(req, "steps", 10, 1, 1000);
                 webexec::http::send_json(res, {{"steps", steps}});
               }));
    server.Get("/store", w([this](const httplib::Request&, httplib::Response& res) {
                 const std::string key = webexec::http::new_job_key();
                 executor.submit_stored(key, [release = release.handle()] {
                   (void)release.wait();
                   return 1;
                 });
                 webexec::http::accepted(res, key);
               }));
    server.Get("/throw", w([](const httplib::Request&, httplib::Response&) {
                 throw std::runtime_error(kSecret);
               }));
    server.Get("/fail", w([this](const httplib::Request&, httplib::Response& res) {
                 const std::string key = webexec::http::new_job_key();
                 auto f = executor.submit_stored(
                     key, []() -> int { throw std::runtime_error(kSecret); });
                 (void)f.wait(kPatience);
                 webexec::http::accepted(res, key);
               }));
  }

  webexec::App app{"errors-test"};
  webexec::Executor executor;
  Gate release;
  std::atomic<int> reported{0};
  HttpServer http;
};

class InstalledErrorMappingTest : public ErrorMappingTest {
 protected:
  void start(webexec::http::HttplibOptions options = {},
             webexec::http::StatusRouteOptions status_options = {}) {
    webexec::http::install(http.server(), app, nullptr, nullptr, options);
    add_routes([](httplib::Server::Handler h) { return h; });
    webexec::http::mount_status_routes(http.server(), executor, "/jobs", status_options);
    http.start();
  }
};

TEST_F(InstalledErrorMappingTest, IntParamAnswers400NamingTheParameter) {
  start();
  auto cli = http.client();
  for (const std::string raw : {"abc", "", "0", "-1", "1001", "99999999999", "1.5", "%00", "%FF",
                                "%E2%91%A4", "+5", " 5", "-0", "00000000000000000000001"}) {
    auto res = cli.Get("/steps?steps=" + raw);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 400) << raw << ": " << res->body;
    ASSERT_TRUE(json::accept(res->body)) << res->body;
    EXPECT_EQ(json::parse(res->body).value("parameter", ""), "steps") << res->body;
  }
  for (const auto& [raw, value] : {std::pair{"1", 1}, {"1000", 1000}, {"007", 7}}) {
    auto res = cli.Get(std::string("/steps?steps=") + raw);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200) << raw << ": " << res->body;
    EXPECT_EQ(json::parse(res->body).at("steps"), value);
  }
  auto absent = cli.Get("/steps");
  ASSERT_TRUE(absent) << httplib::to_string(absent.error());
  EXPECT_EQ(json::parse(absent->body).at("steps"), 10) << "the default when absent";
  EXPECT_EQ(reported.load(), 0) << "a client's mistake is not the app's error";
}

TEST_F(InstalledErrorMappingTest, FullCollectionIs503WithRetryAfterWithoutItsText) {
  start();
  auto cli = http.client();
  auto first = cli.Get("/store");
  ASSERT_TRUE(first) << httplib::to_string(first.error());
  ASSERT_EQ(first->status, 202) << first->body;
  auto full = cli.Get("/store");
  ASSERT_TRUE(full) << httplib::to_string(full.error());
  EXPECT_EQ(full->status, 503) << full->body;
  EXPECT_EQ(full->get_header_value("Retry-After"), "1");
  ASSERT_TRUE(json::accept(full->body)) << full->body;
  EXPECT_EQ(full->body.find("max_length"), std::string::npos) << full->body;
  release.open();
}

TEST_F(InstalledErrorMappingTest, ThrowingHandlerIs500WithoutTheExceptionText) {
  start();
  auto cli = http.client();
  auto res = cli.Get("/throw");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->body.find("hunter2"), std::string::npos) << res->body;
  for (const auto& [name, value] : res->headers) {
    EXPECT_EQ(value.find("hunter2"), std::string::npos) << name << ": " << value;
  }
  EXPECT_EQ(reported.load(), 1) << "the app still hears of it";
}

TEST_F(InstalledErrorMappingTest, AppCanAskForExceptionTextInThe500) {
  webexec::http::HttplibOptions options;
  options.expose_exception_messages = true;
  start(options);
  auto cli = http.client();
  auto res = cli.Get("/throw");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(json::parse(res->body).value("message", ""), kSecret) << res->body;
}

TEST_F(InstalledErrorMappingTest, StatusOfAFailedJobHidesItsMessageByDefault) {
  start();
  auto cli = http.client();
  auto accepted = cli.Get("/fail");
  ASSERT_TRUE(accepted) << httplib::to_string(accepted.error());
  auto res = cli.Get(accepted->get_header_value("Location"));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body.find("hunter2"), std::string::npos) << res->body;
  const json body = json::parse(res->body);
  EXPECT_EQ(body.at("error").at("type"), "std::runtime_error") << body;
}

TEST_F(InstalledErrorMappingTest, StatusOfAFailedJobShowsItsMessageWhenAsked) {
  start({}, {.expose_error_messages = true});
  auto cli = http.client();
  auto accepted = cli.Get("/fail");
  ASSERT_TRUE(accepted) << httplib::to_string(accepted.error());
  auto res = cli.Get(accepted->get_header_value("Location"));
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(json::parse(res->body).at("error").at("message"), kSecret) << res->body;
}

TEST_F(InstalledErrorMappingTest, KeysThatAreNotUtf8Are404WithValidJson) {
  start();
  auto cli = http.client();
  for (const std::string key : {"%FF", "%C0%AF", "%ED%A0%80", "%F4%90%80%80"}) {
    for (const bool del : {false, true}) {
      auto res = del ? cli.Delete("/jobs/" + key) : cli.Get("/jobs/" + key);
      ASSERT_TRUE(res) << httplib::to_string(res.error());
      EXPECT_EQ(res->status, 404) << key << ": " << res->body;
      ASSERT_TRUE(json::accept(res->body)) << key << ": " << res->body;
      std::string echoed = json::parse(res->body).at("key");
      ASSERT_FALSE(echoed.empty());
      for (std::size_t at = 0; at < echoed.size(); at += 3) {
        EXPECT_EQ(echoed.substr(at, 3), "\xEF\xBF\xBD") << "the bad bytes become U+FFFD";
      }
    }
  }
}

TEST_F(ErrorMappingTest, WrapMapsErrorsTheSameWay) {
  add_routes([this](httplib::Server::Handler h) { return webexec::http::wrap(app, std::move(h)); });
  http.start();
  auto cli = http.client();
  auto bad = cli.Get("/steps?steps=abc");
  ASSERT_TRUE(bad) << httplib::to_string(bad.error());
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_EQ(json::parse(bad->body).value("parameter", ""), "steps");
  auto first = cli.Get("/store");
  ASSERT_TRUE(first) << httplib::to_string(first.error());
  ASSERT_EQ(first->status, 202);
  auto full = cli.Get("/store");
  ASSERT_TRUE(full) << httplib::to_string(full.error());
  EXPECT_EQ(full->status, 503);
  EXPECT_EQ(full->get_header_value("Retry-After"), "1");
  auto thrown = cli.Get("/throw");
  ASSERT_TRUE(thrown) << httplib::to_string(thrown.error());
  EXPECT_EQ(thrown->status, 500);
  EXPECT_FALSE(thrown->has_header("EXCEPTION_WHAT")) << thrown->get_header_value("EXCEPTION_WHAT");
  EXPECT_EQ(thrown->body.find("hunter2"), std::string::npos) << thrown->body;
  release.open();
}

}  // namespace
