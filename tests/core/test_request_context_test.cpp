// TestRequestContext (issue 9, "what a new user missed"): Flask's
// app.test_request_context(...), so request code is unit-tested without a
// web server or an httplib::Request.
#include "webexec/test_request_context.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

namespace {

TEST(TestRequestContextTest, MakesTheRequestCurrentForItsLifetime) {
  webexec::App app("unit");
  EXPECT_FALSE(webexec::has_request_context());
  {
    const webexec::TestRequestContext ctx(
        app, {.method = "POST",
              .path = "/x",
              .query = {{"page", "2"}},
              .form = {{"field", "value"}},
              .headers = {{"Content-Type", "application/json"}, {"X-User", "alice"}},
              .body = R"({"n": 1})"});
    EXPECT_TRUE(webexec::has_request_context());
    EXPECT_TRUE(webexec::has_app_context());
    EXPECT_EQ(&webexec::current_app(), &app);
    const webexec::RequestContext& req = webexec::current_request();
    EXPECT_EQ(&req, &ctx.request());
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.path, "/x");
    EXPECT_EQ(req.query_param("page"), "2");
    EXPECT_EQ(req.form_param("field"), "value");
    EXPECT_EQ(req.header("x-user"), "alice");
    EXPECT_EQ(req.body, R"({"n": 1})");
  }
  EXPECT_FALSE(webexec::has_request_context());
  EXPECT_THROW(static_cast<void>(webexec::current_request()), webexec::ContextError);
}

TEST(TestRequestContextTest, EmptyFieldsGetDefaults) {
  webexec::App app("unit");
  const webexec::TestRequestContext ctx(app);
  const webexec::RequestContext& req = webexec::current_request();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/");
  EXPECT_EQ(req.path_groups, std::vector<std::string>{"/"});
  EXPECT_EQ(req.remote_addr, "127.0.0.1");
  EXPECT_EQ(req.request_id, "test");
  EXPECT_TRUE(req.headers.empty());
}

TEST(TestRequestContextTest, SubmitsCaptureTheRequestAndACopyOfG) {
  webexec::App app("unit");
  webexec::Executor executor(app);
  webexec::Future<std::string> future;
  {
    webexec::TestRequestContext ctx(app, {.method = "DELETE", .path = "/jobs/7"});
    webexec::g().set("user", std::string("alice"));
    EXPECT_EQ(&webexec::g(), &ctx.g());
    future = executor.submit([] {
      webexec::g().set("user", std::string("changed in the task"));
      return webexec::current_request().method + " " + webexec::current_request().path + " " +
             webexec::current_app().name();
    });
    EXPECT_EQ(future.result(), "DELETE /jobs/7 unit");
    EXPECT_EQ(webexec::g().get<std::string>("user"), "alice") << "the task has its own g";
    auto user = executor.submit([] { return webexec::g().get<std::string>("user"); });
    EXPECT_EQ(user.result(), "alice");
  }
  // The task's snapshot outlives the test request.
  auto later = future;
  EXPECT_EQ(later.result(), "DELETE /jobs/7 unit");
}

TEST(TestRequestContextTest, NestedContextsRestoreTheOuterOne) {
  webexec::App app("unit");
  const webexec::TestRequestContext outer(app, {.path = "/outer"});
  {
    const webexec::TestRequestContext inner(app, {.path = "/inner"});
    EXPECT_EQ(webexec::current_request().path, "/inner");
  }
  EXPECT_EQ(webexec::current_request().path, "/outer");
}

TEST(TestRequestContextTest, AStoredJobSubmittedFromItSeesTheRequest) {
  webexec::App app("unit");
  webexec::Executor executor(app);
  const webexec::TestRequestContext ctx(app, {.method = "POST", .path = "/start"});
  executor.submit_stored("job", [] { return webexec::current_request().path; });
  EXPECT_EQ(executor.futures().result<std::string>("job"), "/start");
}

}  // namespace
