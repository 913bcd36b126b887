// App: Flask's application object for webexec (Step 2): a name, a config, an
// extensions registry, teardown hooks that run after every task, and an
// error handler that receives failures nobody else can.
#include "webexec/app.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/core_fixtures.hpp"

namespace {

using webexec_test::core::what_of;

struct Widget {
  int value = 0;
};

TEST(AppTest, HasItsName) {
  const webexec::App app("reports");
  EXPECT_EQ(app.name(), "reports");
}

TEST(AppTest, ConfigIsTheAppsOwnAndMutable) {
  webexec::App app("configured");
  app.config().set("EXECUTOR_MAX_WORKERS", 4);
  app.config().set("EXECUTOR_TYPE", "thread");
  app.config().set("EXECUTOR_PUSH_APP_CONTEXT", false);
  const webexec::App& view = app;
  EXPECT_EQ(view.config().get_int("EXECUTOR_MAX_WORKERS"), 4);
  EXPECT_EQ(view.config().get_string("EXECUTOR_TYPE"), "thread");
  EXPECT_EQ(view.config().get_bool("EXECUTOR_PUSH_APP_CONTEXT"), false);

  const webexec::App other("other");
  EXPECT_FALSE(other.config().contains("EXECUTOR_MAX_WORKERS"));
}

TEST(AppTest, ExtensionIsReturnedAsRegistered) {
  webexec::App app("ext");
  auto widget = std::make_shared<Widget>();
  widget->value = 7;
  app.set_extension("widget", widget);
  const auto found = app.extension<Widget>("widget");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found.get(), widget.get());
  EXPECT_EQ(found->value, 7);
  EXPECT_TRUE(app.has_extension("widget"));
}

TEST(AppTest, MissingExtensionIsNull) {
  const webexec::App app("ext");
  EXPECT_EQ(app.extension<Widget>("nothing"), nullptr);
  EXPECT_FALSE(app.has_extension("nothing"));
}

TEST(AppTest, ExtensionOfAnotherTypeThrowsNamingIt) {
  webexec::App app("ext");
  app.set_extension("counter", std::make_shared<int>(3));
  try {
    static_cast<void>(app.extension<Widget>("counter"));
    ADD_FAILURE() << "a typed mismatch returned";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("counter"), std::string::npos) << e.what();
  }
  EXPECT_EQ(*app.extension<int>("counter"), 3);
}

TEST(AppTest, SetExtensionReplacesThePreviousOne) {
  webexec::App app("ext");
  app.set_extension("slot", std::make_shared<int>(1));
  auto widget = std::make_shared<Widget>();
  app.set_extension("slot", widget);
  EXPECT_EQ(app.extension<Widget>("slot"), widget);
  EXPECT_THROW(static_cast<void>(app.extension<int>("slot")), std::invalid_argument);
}

TEST(AppTest, RemoveExtensionAndListNames) {
  webexec::App app("ext");
  app.set_extension("b", std::make_shared<int>(2));
  app.set_extension("a", std::make_shared<int>(1));
  const auto names = app.extension_names();
  EXPECT_EQ(names.size(), 2U);
  EXPECT_NE(std::find(names.begin(), names.end(), "a"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "b"), names.end());

  EXPECT_TRUE(app.remove_extension("a"));
  EXPECT_FALSE(app.remove_extension("a"));
  EXPECT_FALSE(app.has_extension("a"));
  EXPECT_EQ(app.extension<int>("a"), nullptr);
  EXPECT_EQ(app.extension_names(), std::vector<std::string>{"b"});
}

TEST(AppTest, TeardownHooksRunInOrderWithTheError) {
  webexec::App app("teardown");
  std::vector<std::string> calls;
  app.teardown_appcontext(
      [&](std::exception_ptr error) { calls.push_back("first:" + what_of(error)); });
  app.teardown_appcontext(
      [&](std::exception_ptr error) { calls.push_back("second:" + what_of(error)); });
  app.teardown_appcontext(
      [&](std::exception_ptr error) { calls.push_back("third:" + what_of(error)); });

  app.do_teardown_appcontext(std::make_exception_ptr(std::runtime_error("db down")));
  EXPECT_EQ(calls, (std::vector<std::string>{"first:db down", "second:db down", "third:db down"}));

  calls.clear();
  app.do_teardown_appcontext(nullptr);
  EXPECT_EQ(calls, (std::vector<std::string>{"first:", "second:", "third:"}));
}

TEST(AppTest, TeardownHookReceivesNullWithoutAnError) {
  webexec::App app("teardown");
  int calls = 0;
  bool got_error = true;
  app.teardown_appcontext([&](std::exception_ptr error) {
    ++calls;
    got_error = error != nullptr;
  });
  app.do_teardown_appcontext(nullptr);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(got_error);
}

TEST(AppTest, DoTeardownWithoutHooksReportsNothing) {
  webexec::App app("quiet");
  int reports = 0;
  app.set_error_handler([&](const webexec::ErrorReport&) { ++reports; });
  app.do_teardown_appcontext(std::make_exception_ptr(std::runtime_error("ignored")));
  EXPECT_EQ(reports, 0);
}

TEST(AppTest, ThrowingTeardownHookIsReportedAndLaterHooksStillRun) {
  webexec::App app("teardown");
  std::vector<webexec::ErrorReport> reports;
  app.set_error_handler([&](const webexec::ErrorReport& r) { reports.push_back(r); });
  std::vector<std::string> calls;
  app.teardown_appcontext([&](std::exception_ptr) { calls.emplace_back("first"); });
  app.teardown_appcontext([&](std::exception_ptr) -> void {
    calls.emplace_back("thrower");
    throw std::runtime_error("release failed");
  });
  app.teardown_appcontext([&](std::exception_ptr) { calls.emplace_back("last"); });

  app.do_teardown_appcontext(nullptr);

  EXPECT_EQ(calls, (std::vector<std::string>{"first", "thrower", "last"}));
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].origin, "teardown hook");
  EXPECT_EQ(reports[0].message, "release failed");
  EXPECT_EQ(what_of(reports[0].exception), "release failed");
}

TEST(AppTest, CustomErrorHandlerReceivesTheReport) {
  webexec::App app("errors");
  std::vector<webexec::ErrorReport> reports;
  app.set_error_handler([&](const webexec::ErrorReport& r) { reports.push_back(r); });
  const auto error = std::make_exception_ptr(std::runtime_error("boom"));
  app.report_error({.origin = "task",
                    .executor = "custom",
                    .key = "calc_power",
                    .message = "boom",
                    .exception = error});
  ASSERT_EQ(reports.size(), 1U);
  EXPECT_EQ(reports[0].origin, "task");
  EXPECT_EQ(reports[0].executor, "custom");
  EXPECT_EQ(reports[0].key, "calc_power");
  EXPECT_EQ(reports[0].message, "boom");
  EXPECT_EQ(reports[0].exception, error);
}

TEST(AppTest, DefaultErrorHandlerPrintsToStderr) {
  const webexec::App app("printer");
  testing::internal::CaptureStderr();
  app.report_error({.origin = "task",
                    .executor = "custom",
                    .key = "calc_power",
                    .message = "overflow",
                    .exception = nullptr});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("printer"), std::string::npos) << out;
  EXPECT_NE(out.find("task 'calc_power' of executor 'custom' failed: overflow"), std::string::npos)
      << out;
}

TEST(AppTest, EmptyErrorHandlerRestoresTheDefault) {
  webexec::App app("restorer");
  int custom_calls = 0;
  app.set_error_handler([&](const webexec::ErrorReport&) { ++custom_calls; });
  app.set_error_handler({});
  testing::internal::CaptureStderr();
  app.report_error({.origin = "task", .executor = "", .key = "", .message = "x", .exception = {}});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(custom_calls, 0);
  EXPECT_NE(out.find("failed: x"), std::string::npos) << out;
}

TEST(AppTest, CustomErrorHandlerSilencesStderr) {
  webexec::App app("silent");
  int calls = 0;
  app.set_error_handler([&](const webexec::ErrorReport&) { ++calls; });
  testing::internal::CaptureStderr();
  app.report_error({.origin = "task", .executor = "", .key = "", .message = "x", .exception = {}});
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out, "");
}

TEST(AppTest, ThrowingErrorHandlerDoesNotEscapeReportError) {
  webexec::App app("thrower");
  int calls = 0;
  app.set_error_handler([&](const webexec::ErrorReport&) -> void {
    ++calls;
    throw std::runtime_error("handler broke");
  });
  // report_error is noexcept: an escaping exception would terminate the test.
  app.report_error({.origin = "task", .executor = "", .key = "", .message = "x", .exception = {}});
  EXPECT_EQ(calls, 1);
}

TEST(AppTest, DescribeNamesOriginKeyExecutorAndMessage) {
  EXPECT_EQ(webexec::describe({.origin = "task",
                               .executor = "custom",
                               .key = "calc_power",
                               .message = "overflow",
                               .exception = {}}),
            "task 'calc_power' of executor 'custom' failed: overflow");
}

TEST(AppTest, DescribeWithoutKeyOrOrigin) {
  EXPECT_EQ(webexec::describe(
                {.origin = "", .executor = "", .key = "", .message = "bad", .exception = {}}),
            "task of executor '' failed: bad");
  EXPECT_EQ(webexec::describe({.origin = "teardown hook",
                               .executor = "",
                               .key = "",
                               .message = "leak",
                               .exception = {}}),
            "teardown hook of executor '' failed: leak");
}

}  // namespace
