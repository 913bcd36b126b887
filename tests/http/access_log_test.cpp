// The adapter's access log (issue 9 item 15): query values with %0A were logged raw, so
// a client could forge log lines. Every line from HttplibOptions::access_log escapes
// control characters, quotes and bytes >= 0x80; checked with a real server and client.
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "webexec/app.hpp"
#include "webexec/http/httplib_adapter.hpp"

#include "support/http_server.hpp"

namespace {

using webexec_test::HttpServer;

bool printable_ascii(const std::string& line) {
  for (const char c : line) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20U || u >= 0x7fU) return false;
  }
  return true;
}

TEST(EscapeLogTest, EscapesControlCharactersQuotesBackslashesAndHighBytes) {
  EXPECT_EQ(webexec::http::escape_log("plain text 123"), "plain text 123");
  EXPECT_EQ(webexec::http::escape_log("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(webexec::http::escape_log(std::string("\0\x1b\x7f", 3)), "\\x00\\x1b\\x7f");
  EXPECT_EQ(webexec::http::escape_log("\"q\" \\"), "\\x22q\\x22 \\\\");
  EXPECT_EQ(webexec::http::escape_log("\xff\xc3\xa9"), "\\xff\\xc3\\xa9");
}

TEST(AccessLogTest, QueryWithNewlinesCannotForgeALine) {
  webexec::App app("log-test");
  std::mutex mutex;
  std::vector<std::string> lines;
  webexec::http::HttplibOptions options;
  options.access_log = [&](const std::string& line) {
    const std::lock_guard lock(mutex);
    lines.push_back(line);
  };
  HttpServer http;
  webexec::http::install(http.server(), app, nullptr, nullptr, options);
  http.server().Get("/reports", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  http.start();
  {
    auto cli = http.client();
    auto res = cli.Get("/reports?steps=1%0A127.0.0.1%20%22GET%20/admin%22%20200%0D%1B[31m&x=%22%5C",
                       {{"X-Request-Id", "log-1"}});
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 200);
    auto missing = cli.Get("/nowhere%0Aforged");
    ASSERT_TRUE(missing) << httplib::to_string(missing.error());
    EXPECT_EQ(missing->status, 404);
  }
  http.stop();  // the logger runs after the response is written: wait for it

  const std::lock_guard lock(mutex);
  ASSERT_EQ(lines.size(), 2U);
  for (const auto& line : lines) {
    EXPECT_TRUE(printable_ascii(line)) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos);
  }
  EXPECT_NE(lines[0].find("steps=1\\n127.0.0.1 \\x22GET /admin\\x22 200\\r\\x1b[31m"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("x=\\x22\\\\"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].rfind("127.0.0.1 \"GET /reports?", 0), 0U) << lines[0];
  EXPECT_NE(lines[0].find("\" 200 2 id=log-1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("/nowhere\\nforged\" 404"), std::string::npos) << lines[1];
}

TEST(AccessLogTest, AThrowingSinkDoesNotTakeTheServerDown) {
  webexec::App app("log-test");
  webexec::http::HttplibOptions options;
  options.access_log = [](const std::string&) { throw std::runtime_error("disk full"); };
  HttpServer http;
  webexec::http::install(http.server(), app, nullptr, nullptr, options);
  http.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  http.start();
  auto cli = http.client();
  for (int i = 0; i < 3; ++i) {
    auto res = cli.Get("/");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
  }
}

}  // namespace
