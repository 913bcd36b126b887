// webexec::http::install / wrap against a real httplib::Server (Debian 0.11.4) on
// 127.0.0.1 and a real httplib::Client: the request snapshot a task sees (method, path,
// query and form parameters, headers, body, match groups, socket address, request id),
// g's copy semantics, hook chaining, a throwing user hook, malformed requests, the
// per-route wrapper, and submits outside any request.
#include "webexec/http/httplib_adapter.hpp"

#include <atomic>
#include <cctype>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/errors.hpp"
#include "webexec/executor.hpp"

#include "support/http_server.hpp"

namespace {

using nlohmann::json;
using webexec_test::Gate;
using webexec_test::HttpServer;
using webexec_test::kPatience;

/// The snapshot as JSON, so a task can hand it back through a response.
json describe(const webexec::RequestContext& r) {
  return {{"method", r.method},
          {"path", r.path},
          {"query", r.query},
          {"form", r.form},
          {"headers", r.headers},
          {"body", r.body},
          {"path_groups", r.path_groups},
          {"remote_addr", r.remote_addr},
          {"remote_port", r.remote_port},
          {"request_id", r.request_id}};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

/// Every value of `name` (case-insensitive) in a JSON list of [name, value] pairs.
std::vector<std::string> values_of(const json& pairs, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& pair : pairs) {
    if (iequals(pair.at(0).get<std::string>(), name)) out.push_back(pair.at(1).get<std::string>());
  }
  return out;
}

bool is_generated_id(const std::string& id) {
  if (id.size() != 16) return false;
  for (const char c : id) {
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0 ||
        std::isupper(static_cast<unsigned char>(c)) != 0) {
      return false;
    }
  }
  return true;
}

/// The body of a raw HTTP/1.1 response (Content-Length framing, as httplib writes it).
std::string raw_body(const std::string& response) {
  const std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

/// The value of header `name` in a raw HTTP/1.1 response, if present.
std::optional<std::string> raw_header(const std::string& response, std::string_view name) {
  std::size_t pos = response.find("\r\n");
  const std::size_t end = response.find("\r\n\r\n");
  while (pos != std::string::npos && pos < end) {
    const std::size_t next = response.find("\r\n", pos + 2);
    const std::string line = response.substr(pos + 2, next - pos - 2);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos && iequals(line.substr(0, colon), name)) {
      std::size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      return line.substr(v);
    }
    pos = next;
  }
  return std::nullopt;
}

/// Collects the app's error reports (the handler runs on server threads).
class ReportLog {
 public:
  webexec::App::ErrorHandler handler() {
    return [this](const webexec::ErrorReport& r) {
      const std::lock_guard lock(mutex_);
      reports_.push_back(r);
    };
  }
  std::vector<webexec::ErrorReport> reports() {
    const std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::mutex mutex_;
  std::vector<webexec::ErrorReport> reports_;
};

class HttplibAdapterTest : public ::testing::Test {
 protected:
  /// A handler that submits a task returning describe(current_request()), waits for
  /// it and answers with that JSON.
  httplib::Server::Handler describe_in_task() {
    return [this](const httplib::Request&, httplib::Response& res) {
      auto f = executor.submit([] { return describe(webexec::current_request()); });
      res.set_content(f.result(kPatience).dump(), "application/json");
    };
  }

  webexec::App app{"adapter-test"};
  webexec::Executor executor{app};
};

// --- the snapshot a task sees -------------------------------------------------------------

TEST_F(HttplibAdapterTest, TaskSeesMethodPathQueryFormHeaderBodyAndMatchGroups) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Post(R"(/items/(\d+))", describe_in_task());
  http.start();
  auto cli = http.client();

  const httplib::Headers headers{{"X-Custom", "abc 123"}};
  auto res = cli.Post("/items/42?q=hello%20world&lang=en", headers, "a=1&b=two+words&c=%26",
                      "application/x-www-form-urlencoded");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json seen = json::parse(res->body);

  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/items/42");
  EXPECT_EQ(seen["query"], json::parse(R"([["q","hello world"],["lang","en"]])"));
  EXPECT_EQ(seen["form"], json::parse(R"([["a","1"],["b","two words"],["c","&"]])"));
  EXPECT_EQ(values_of(seen["headers"], "X-Custom"), std::vector<std::string>{"abc 123"});
  EXPECT_EQ(values_of(seen["headers"], "Content-Type"),
            std::vector<std::string>{"application/x-www-form-urlencoded"});
  EXPECT_EQ(seen["body"], "a=1&b=two+words&c=%26");
  EXPECT_EQ(seen["path_groups"], json::parse(R"(["/items/42","42"])"));
}

TEST_F(HttplibAdapterTest, HandlerItselfSeesTheSameSnapshotAsItsTask) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get(R"(/users/(\w+))", [this](const httplib::Request&, httplib::Response& res) {
    const webexec::RequestContext* in_handler = &webexec::current_request();
    auto f = executor.submit([] { return &webexec::current_request(); });
    auto f2 = executor.submit([] { return &webexec::current_request(); });
    const bool shared = f.result(kPatience) == in_handler && f2.result(kPatience) == in_handler;
    res.set_content(json{{"shared", shared}, {"group", in_handler->path_groups.at(1)}}.dump(),
                    "application/json");
  });
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/users/ada");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json seen = json::parse(res->body);
  EXPECT_EQ(seen["group"], "ada");
  EXPECT_TRUE(seen["shared"].get<bool>()) << "every task of a request shares one snapshot";
}

TEST_F(HttplibAdapterTest, RemoteAddrComesFromTheSocketAndSyntheticHeadersAreDropped) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/who", describe_in_task());
  http.start();
  auto cli = http.client();

  const httplib::Headers spoofed{{"REMOTE_ADDR", "6.6.6.6"},
                                 {"REMOTE_PORT", "1"},
                                 {"LOCAL_ADDR", "7.7.7.7"},
                                 {"LOCAL_PORT", "2"},
                                 {"X-Kept", "yes"}};
  auto res = cli.Get("/who", spoofed);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json seen = json::parse(res->body);

  EXPECT_EQ(seen["remote_addr"], "127.0.0.1");
  EXPECT_GT(seen["remote_port"].get<int>(), 1);
  for (const char* name : {"REMOTE_ADDR", "REMOTE_PORT", "LOCAL_ADDR", "LOCAL_PORT"}) {
    EXPECT_TRUE(values_of(seen["headers"], name).empty())
        << name << " must not reach the snapshot: " << seen["headers"].dump();
  }
  EXPECT_EQ(values_of(seen["headers"], "X-Kept"), std::vector<std::string>{"yes"});
}

// --- request id ---------------------------------------------------------------------------

TEST_F(HttplibAdapterTest, ClientRequestIdIsEchoedAndVisibleInTheTask) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/rid", describe_in_task());
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/rid", {{"X-Request-Id", "client-id_1.2:3"}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["request_id"], "client-id_1.2:3");
  EXPECT_EQ(res->get_header_value("X-Request-Id"), "client-id_1.2:3");
  EXPECT_EQ(res->get_header_value_count("X-Request-Id"), 1U);

  // Without one, each request gets a fresh generated id, echoed too.
  auto a = cli.Get("/rid");
  auto b = cli.Get("/rid");
  ASSERT_TRUE(a && b);
  const std::string id_a = json::parse(a->body)["request_id"];
  const std::string id_b = json::parse(b->body)["request_id"];
  EXPECT_TRUE(is_generated_id(id_a)) << id_a;
  EXPECT_TRUE(is_generated_id(id_b)) << id_b;
  EXPECT_NE(id_a, id_b);
  EXPECT_EQ(a->get_header_value("X-Request-Id"), id_a);
  EXPECT_EQ(b->get_header_value("X-Request-Id"), id_b);
}

TEST_F(HttplibAdapterTest, MaliciousRequestIdIsReplacedByAGeneratedOne) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/rid", describe_in_task());
  http.start();

  const std::vector<std::string> malicious{
      "evil id; rm -rf /",          // spaces and shell characters
      "abc\rX-Injected: yes",       // a bare CR inside the value
      "<script>alert(1)</script>",  // markup
      std::string(200, 'a'),        // too long
  };
  for (const std::string& id : malicious) {
    SCOPED_TRACE(json(id).dump());
    const std::string response = webexec_test::raw_request(
        http.port(), "GET /rid HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: " + id +
                         "\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(response.rfind("HTTP/1.1 200", 0), 0U) << response;
    const std::string seen = json::parse(raw_body(response))["request_id"];
    EXPECT_NE(seen, id);
    EXPECT_TRUE(is_generated_id(seen)) << seen;
    EXPECT_EQ(raw_header(response, "X-Request-Id"), seen);
    EXPECT_EQ(raw_header(response, "X-Injected"), std::nullopt);
  }
}

// --- g ------------------------------------------------------------------------------------

TEST_F(HttplibAdapterTest, GIsCopiedAtSubmitInBothDirections) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/g", [this](const httplib::Request&, httplib::Response& res) {
    webexec::g().set("user", std::string("alice"));
    Gate handler_changed_g;
    auto f = executor.submit([changed = handler_changed_g.handle()] {
      (void)changed.wait();  // read g only after the handler changed its own
      json seen = {{"user", webexec::g().get<std::string>("user")},
                   {"has_late", webexec::g().contains("late")}};
      webexec::g().set("user", std::string("task"));
      webexec::g().set("from_task", 1);
      return seen;
    });
    webexec::g().set("user", std::string("bob"));
    webexec::g().set("late", true);
    handler_changed_g.open();
    const json task_saw = f.result(kPatience);
    res.set_content(json{{"task_saw", task_saw},
                         {"handler_user", webexec::g().get<std::string>("user")},
                         {"handler_has_from_task", webexec::g().contains("from_task")}}
                        .dump(),
                    "application/json");
  });
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/g");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json out = json::parse(res->body);
  EXPECT_EQ(out["task_saw"]["user"], "alice") << "set before submit: visible in the task";
  EXPECT_FALSE(out["task_saw"]["has_late"].get<bool>()) << "set after submit: not visible";
  EXPECT_EQ(out["handler_user"], "bob") << "the task's writes must not reach the request";
  EXPECT_FALSE(out["handler_has_from_task"].get<bool>());
}

TEST_F(HttplibAdapterTest, GStartsEmptyForEachRequestOnAKeepAliveConnection) {
  HttpServer http(1);  // one server thread: every request runs on it
  webexec::http::install(http.server(), app);
  http.server().Get("/count", [this](const httplib::Request&, httplib::Response& res) {
    const int before = webexec::g().get_or("n", 0);
    webexec::g().set("n", before + 1);
    auto f = executor.submit([] { return webexec::g().get<int>("n"); });
    res.set_content(json{{"before", before}, {"task", f.result(kPatience)}}.dump(),
                    "application/json");
  });
  http.start();
  auto cli = http.client();

  for (int i = 0; i < 3; ++i) {
    auto res = cli.Get("/count");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(json::parse(res->body), json::parse(R"({"before":0,"task":1})")) << "request " << i;
  }
}

// --- hooks --------------------------------------------------------------------------------

TEST_F(HttplibAdapterTest, UserPreAndPostHooksAreChained) {
  std::atomic<int> pre_calls{0};
  std::atomic<int> post_calls{0};
  HttpServer http(1);
  webexec::http::install(
      http.server(), app,
      [&](const httplib::Request& req, httplib::Response& res) {
        ++pre_calls;
        webexec::g().set("tenant", std::string("from-pre"));  // the scope is already set
        if (req.path == "/blocked") {
          res.status = 403;
          res.set_content("blocked", "text/plain");
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      },
      [&](const httplib::Request&, httplib::Response& res) {
        ++post_calls;
        res.set_header("X-Post", "ran");
      });
  http.server().Get("/tenant", [this](const httplib::Request&, httplib::Response& res) {
    auto f = executor.submit([] {
      return json{{"tenant", webexec::g().get<std::string>("tenant")},
                  {"path", webexec::current_request().path}};
    });
    res.set_content(f.result(kPatience).dump(), "application/json");
  });
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/tenant");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body), json::parse(R"({"tenant":"from-pre","path":"/tenant"})"));
  EXPECT_EQ(res->get_header_value("X-Post"), "ran");
  EXPECT_FALSE(res->get_header_value("X-Request-Id").empty()) << "the adapter's own post ran";
  EXPECT_EQ(pre_calls.load(), 1);
  EXPECT_EQ(post_calls.load(), 1);

  // A pre hook that handles the request: post still runs, and the next request on the
  // same connection (same server thread) gets its own scope.
  auto blocked = cli.Get("/blocked", {{"X-Request-Id", "blocked-1"}});
  ASSERT_TRUE(blocked) << httplib::to_string(blocked.error());
  EXPECT_EQ(blocked->status, 403);
  EXPECT_EQ(blocked->get_header_value("X-Post"), "ran");
  EXPECT_EQ(blocked->get_header_value("X-Request-Id"), "blocked-1");
  auto again = cli.Get("/tenant", {{"X-Request-Id", "again-1"}});
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(json::parse(again->body)["path"], "/tenant");
  EXPECT_EQ(again->get_header_value("X-Request-Id"), "again-1");
  EXPECT_EQ(pre_calls.load(), 3);
  EXPECT_EQ(post_calls.load(), 3);
}

TEST_F(HttplibAdapterTest, ThrowingUserPostHookIsReportedAndTheServerSurvives) {
  ReportLog log;
  app.set_error_handler(log.handler());
  struct Restore {
    webexec::App& app;
    ~Restore() { app.set_error_handler(nullptr); }
  } restore{app};
  HttpServer http(1);
  webexec::http::install(http.server(), app, nullptr,
                         [](const httplib::Request& req, httplib::Response&) {
                           if (req.path == "/explode") {
                             throw std::runtime_error("post hook failed on " + req.path);
                           }
                         });
  http.server().Get("/explode", describe_in_task());
  http.server().Get("/fine", describe_in_task());
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/explode", {{"X-Request-Id", "boom-1"}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  const auto reports = log.reports();
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].origin, "post-routing hook");
  EXPECT_EQ(reports[0].message, "post hook failed on /explode");
  EXPECT_NE(reports[0].exception, nullptr);

  // Still serving, with a fresh scope on the same server thread.
  auto next = cli.Get("/fine", {{"X-Request-Id", "fine-1"}});
  ASSERT_TRUE(next) << httplib::to_string(next.error());
  ASSERT_EQ(next->status, 200);
  const json seen = json::parse(next->body);
  EXPECT_EQ(seen["path"], "/fine");
  EXPECT_EQ(seen["request_id"], "fine-1");
  EXPECT_EQ(log.reports().size(), 1U);
}

TEST_F(HttplibAdapterTest, MalformedRequestThatSkipsPreRoutingDoesNotBreakLaterRequests) {
  std::atomic<int> pre_calls{0};
  std::atomic<int> post_calls{0};
  HttpServer http(1);  // the malformed and the good requests share one server thread
  webexec::http::install(
      http.server(), app,
      [&](const httplib::Request&, httplib::Response&) {
        ++pre_calls;
        return httplib::Server::HandlerResponse::Unhandled;
      },
      [&](const httplib::Request&, httplib::Response&) { ++post_calls; });
  http.server().Get(R"(/after/(\d+))", describe_in_task());
  http.start();

  const std::string bogus = webexec_test::raw_request(http.port(), "BOGUS / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(bogus.rfind("HTTP/1.1 400", 0), 0U) << bogus;
  EXPECT_EQ(pre_calls.load(), 0) << "httplib skips pre-routing for a bad request line";
  EXPECT_EQ(post_calls.load(), 1) << "but runs post-routing";

  auto cli = http.client();
  for (int i = 0; i < 2; ++i) {
    const std::string id = "after-" + std::to_string(i);
    auto res = cli.Get("/after/" + std::to_string(i), {{"X-Request-Id", id}});
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 200) << res->body;
    const json seen = json::parse(res->body);
    EXPECT_EQ(seen["path_groups"][1], std::to_string(i));
    EXPECT_EQ(seen["request_id"], id);
  }
  EXPECT_EQ(pre_calls.load(), 2);
  EXPECT_EQ(post_calls.load(), 3);
}

TEST_F(HttplibAdapterTest, ScopeEndsAtPostRoutingSoNothingLaterOnTheThreadSeesIt) {
  struct Seen {
    std::string hook;
    std::string path;
    bool has_request;
  };
  std::mutex mutex;
  std::vector<Seen> seen;
  auto record = [&](std::string hook, const httplib::Request& req) {
    const std::lock_guard lock(mutex);
    seen.push_back({std::move(hook), req.path, webexec::has_request_context()});
  };
  HttpServer http(1);  // one server thread: a scope left behind would be seen next
  webexec::http::install(
      http.server(), app, nullptr,
      [&](const httplib::Request& req, httplib::Response&) { record("post", req); });
  // httplib calls the logger after post-routing, once the response is written.
  http.server().set_logger(
      [&](const httplib::Request& req, const httplib::Response&) { record("logger", req); });
  http.server().Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  http.start();

  {
    auto cli = http.client();
    auto res = cli.Get("/ok");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
  }  // closes the connection, freeing the only server thread
  const std::string bogus = webexec_test::raw_request(http.port(), "BOGUS / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(bogus.rfind("HTTP/1.1 400", 0), 0U) << bogus;
  http.stop();  // joins the server thread: every hook has run

  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[0].hook, "post");
  EXPECT_TRUE(seen[0].has_request) << "the user post hook runs inside the scope";
  EXPECT_EQ(seen[1].hook, "logger");
  EXPECT_FALSE(seen[1].has_request) << "the scope must end at post-routing";
  EXPECT_EQ(seen[2].hook, "post");
  EXPECT_FALSE(seen[2].has_request) << "a bad request (no pre-routing) got a stale scope";
  EXPECT_EQ(seen[3].hook, "logger");
  EXPECT_FALSE(seen[3].has_request);
}

// --- per-route wrapper --------------------------------------------------------------------

TEST_F(HttplibAdapterTest, WrapGivesTheContextWithoutInstall) {
  HttpServer http;
  http.server().Get(R"(/wrapped/(\w+))", webexec::http::wrap(app, [this](const httplib::Request&,
                                                                         httplib::Response& res) {
                      webexec::g().set("who", std::string("wrapped"));
                      auto f = executor.submit([] {
                        json out = describe(webexec::current_request());
                        out["g_who"] = webexec::g().get<std::string>("who");
                        out["app"] = webexec::current_app().name();
                        return out;
                      });
                      res.set_content(f.result(kPatience).dump(), "application/json");
                    }));
  http.server().Get("/plain", [this](const httplib::Request&, httplib::Response& res) {
    auto f = executor.submit([] {
      std::string error;
      try {
        (void)webexec::current_request();
      } catch (const webexec::ContextError& e) {
        error = e.what();
      }
      return json{{"has_request", webexec::has_request_context()}, {"error", error}};
    });
    res.set_content(f.result(kPatience).dump(), "application/json");
  });
  http.start();
  auto cli = http.client();

  auto res = cli.Get("/wrapped/bob", {{"X-Request-Id", "wrap-1"}, {"REMOTE_ADDR", "6.6.6.6"}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200) << res->body;
  const json seen = json::parse(res->body);
  EXPECT_EQ(seen["path_groups"], json::parse(R"(["/wrapped/bob","bob"])"));
  EXPECT_EQ(seen["request_id"], "wrap-1");
  EXPECT_EQ(seen["remote_addr"], "127.0.0.1");
  EXPECT_TRUE(values_of(seen["headers"], "REMOTE_ADDR").empty());
  EXPECT_EQ(seen["g_who"], "wrapped");
  EXPECT_EQ(seen["app"], "adapter-test");
  EXPECT_EQ(res->get_header_value("X-Request-Id"), "wrap-1");

  // A route that is not wrapped (and no install): its tasks have no request context.
  auto plain = cli.Get("/plain");
  ASSERT_TRUE(plain) << httplib::to_string(plain.error());
  const json out = json::parse(plain->body);
  EXPECT_FALSE(out["has_request"].get<bool>());
  EXPECT_NE(out["error"].get<std::string>().find("request"), std::string::npos) << out;
  EXPECT_FALSE(plain->has_header("X-Request-Id"));
}

// --- outside a request --------------------------------------------------------------------

TEST_F(HttplibAdapterTest, SubmitOutsideARequestHasTheAppButNoRequest) {
  HttpServer http;
  webexec::http::install(http.server(), app);
  http.server().Get("/ctx", describe_in_task());
  http.start();
  auto cli = http.client();
  auto res = cli.Get("/ctx");  // the server's scopes live on its own threads
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200);

  auto request = executor.submit([] { return webexec::current_request().path; });
  EXPECT_THROW((void)request.result(kPatience), webexec::ContextError);
  auto app_name = executor.submit([] { return webexec::current_app().name(); });
  EXPECT_EQ(app_name.result(kPatience), "adapter-test");
  EXPECT_THROW((void)webexec::current_request(), webexec::ContextError);
}

}  // namespace
