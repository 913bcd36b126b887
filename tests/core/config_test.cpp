// Config: Flask's app.config with strict typed reads (Step 2). Values are
// strings, integers or booleans; setdefault follows Python's dict.setdefault;
// booleans and integers parse strictly and every error names the key and value.
#include "webexec/config.hpp"

#include <cstdint>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "support/core_fixtures.hpp"

namespace {

using webexec::Config;
using webexec::ConfigValue;
using webexec_test::core::message_of;

TEST(ConfigTest, SetAndGetAString) {
  Config config;
  config.set("NAME", "value");
  config.set("OTHER", std::string("text"));
  const auto value = config.get("NAME");
  ASSERT_TRUE(value.has_value());
  ASSERT_TRUE(std::holds_alternative<std::string>(*value));
  EXPECT_EQ(std::get<std::string>(*value), "value");
  EXPECT_EQ(config.get_string("OTHER"), "text");
}

TEST(ConfigTest, SetAndGetAnInteger) {
  Config config;
  config.set("WORKERS", 4);
  config.set("BIG", std::int64_t{1} << 40);
  const auto value = config.get("WORKERS");
  ASSERT_TRUE(value.has_value());
  ASSERT_TRUE(std::holds_alternative<std::int64_t>(*value));
  EXPECT_EQ(std::get<std::int64_t>(*value), 4);
  EXPECT_EQ(config.get_int("WORKERS"), 4);
  EXPECT_EQ(config.get_int("BIG"), std::int64_t{1} << 40);
  EXPECT_EQ(config.get_string("WORKERS"), "4");
}

TEST(ConfigTest, SetWithABoolStoresABoolNotAnInteger) {
  Config config;
  config.set("FLAG", true);
  config.set("OFF", false);
  const auto value = config.get("FLAG");
  ASSERT_TRUE(value.has_value());
  EXPECT_TRUE(std::holds_alternative<bool>(*value));
  EXPECT_FALSE(std::holds_alternative<std::int64_t>(*value));
  EXPECT_EQ(config.get_bool("FLAG"), true);
  EXPECT_EQ(config.get_bool("OFF"), false);
  EXPECT_EQ(config.get_string("FLAG"), "true");
  EXPECT_EQ(config.get_string("OFF"), "false");
}

TEST(ConfigTest, SetReplacesThePreviousValueAndType) {
  Config config;
  config.set("K", "text");
  config.set("K", 7);
  ASSERT_TRUE(std::holds_alternative<std::int64_t>(*config.get("K")));
  EXPECT_EQ(config.get_int("K"), 7);
  config.set("K", false);
  EXPECT_EQ(config.get_bool("K"), false);
}

TEST(ConfigTest, MissingKeyGivesEmptyOptionals) {
  const Config config;
  EXPECT_FALSE(config.get("MISSING").has_value());
  EXPECT_FALSE(config.get_string("MISSING").has_value());
  EXPECT_FALSE(config.get_bool("MISSING").has_value());
  EXPECT_FALSE(config.get_int("MISSING").has_value());
  EXPECT_FALSE(config.contains("MISSING"));
}

TEST(ConfigTest, ContainsEraseAndKeys) {
  Config config;
  config.set("B", 1);
  config.set("A", "x");
  EXPECT_TRUE(config.contains("A"));
  EXPECT_EQ(config.keys(), (std::vector<std::string>{"A", "B"}));
  EXPECT_TRUE(config.erase("A"));
  EXPECT_FALSE(config.erase("A"));
  EXPECT_FALSE(config.contains("A"));
  EXPECT_EQ(config.keys(), (std::vector<std::string>{"B"}));
}

TEST(ConfigTest, SetdefaultStoresAndReturnsTheValueWhenMissing) {
  Config config;
  const ConfigValue stored = config.setdefault("EXECUTOR_TYPE", "thread");
  ASSERT_TRUE(std::holds_alternative<std::string>(stored));
  EXPECT_EQ(std::get<std::string>(stored), "thread");
  EXPECT_EQ(config.get_string("EXECUTOR_TYPE"), "thread");
}

TEST(ConfigTest, SetdefaultReturnsTheStoredValueAndDoesNotOverwrite) {
  Config config;
  config.set("EXECUTOR_MAX_WORKERS", 4);
  const ConfigValue stored = config.setdefault("EXECUTOR_MAX_WORKERS", "nine");
  ASSERT_TRUE(std::holds_alternative<std::int64_t>(stored));
  EXPECT_EQ(std::get<std::int64_t>(stored), 4);
  EXPECT_EQ(config.get_int("EXECUTOR_MAX_WORKERS"), 4);

  config.set("FLAG", false);
  const ConfigValue flag = config.setdefault("FLAG", true);
  ASSERT_TRUE(std::holds_alternative<bool>(flag));
  EXPECT_FALSE(std::get<bool>(flag));
  EXPECT_EQ(config.get_bool("FLAG"), false);
}

TEST(ConfigTest, CopyIsIndependent) {
  Config original;
  original.set("K", 1);
  Config copy(original);
  copy.set("K", 2);
  EXPECT_EQ(original.get_int("K"), 1);
  EXPECT_EQ(copy.get_int("K"), 2);
  Config assigned;
  assigned.set("OTHER", "x");
  assigned = original;
  EXPECT_EQ(assigned.get_int("K"), 1);
  EXPECT_FALSE(assigned.contains("OTHER"));
}

TEST(ConfigTest, BoolAcceptsTheStrictSpellingsInAnyCase) {
  Config config;
  const std::vector<std::string> truthy = {"true", "TRUE", "True", "tRuE", "1", "yes",
                                           "YES",  "Yes",  "on",   "ON",   "On"};
  const std::vector<std::string> falsy = {"false", "FALSE", "False", "fAlSe", "0",  "no",
                                          "NO",    "No",    "off",   "OFF",   "Off"};
  for (const auto& text : truthy) {
    config.set("FLAG", text);
    EXPECT_EQ(config.get_bool("FLAG"), true) << text;
    EXPECT_TRUE(webexec::parse_bool("FLAG", ConfigValue(text))) << text;
  }
  for (const auto& text : falsy) {
    config.set("FLAG", text);
    EXPECT_EQ(config.get_bool("FLAG"), false) << text;
    EXPECT_FALSE(webexec::parse_bool("FLAG", ConfigValue(text))) << text;
  }
}

TEST(ConfigTest, FalseStringIsFalseNotTruthy) {
  // Upstream reads EXECUTOR_PUSH_APP_CONTEXT by raw truthiness: 'false' is true.
  Config config;
  config.set("EXECUTOR_PUSH_APP_CONTEXT", "false");
  EXPECT_EQ(config.get_bool("EXECUTOR_PUSH_APP_CONTEXT"), false);
}

TEST(ConfigTest, BoolAcceptsIntegersZeroAndOne) {
  Config config;
  config.set("ONE", 1);
  config.set("ZERO", 0);
  EXPECT_EQ(config.get_bool("ONE"), true);
  EXPECT_EQ(config.get_bool("ZERO"), false);
}

TEST(ConfigTest, BoolRejectsOtherStringsNamingKeyAndValue) {
  Config config;
  for (const std::string text : {"enabled", "y", "n", "2", "truee", " true", "t"}) {
    config.set("MY_FLAG", text);
    const std::string what =
        message_of<std::invalid_argument>([&] { static_cast<void>(config.get_bool("MY_FLAG")); });
    EXPECT_NE(what.find("MY_FLAG"), std::string::npos) << what;
    EXPECT_NE(what.find(text), std::string::npos) << what;
  }
}

TEST(ConfigTest, BoolRejectsTheEmptyString) {
  Config config;
  config.set("EMPTY_FLAG", "");
  const std::string what =
      message_of<std::invalid_argument>([&] { static_cast<void>(config.get_bool("EMPTY_FLAG")); });
  EXPECT_NE(what.find("EMPTY_FLAG"), std::string::npos) << what;
  EXPECT_NE(what.find("''"), std::string::npos) << "the empty value is shown: " << what;
}

TEST(ConfigTest, BoolRejectsOtherIntegersNamingKeyAndValue) {
  Config config;
  config.set("INT_FLAG", 2);
  const std::string what =
      message_of<std::invalid_argument>([&] { static_cast<void>(config.get_bool("INT_FLAG")); });
  EXPECT_NE(what.find("INT_FLAG"), std::string::npos) << what;
  EXPECT_NE(what.find('2'), std::string::npos) << what;
}

TEST(ConfigTest, IntParsesDecimalStrings) {
  Config config;
  config.set("A", "42");
  config.set("B", "-7");
  config.set("C", "+5");
  config.set("D", "9223372036854775807");
  EXPECT_EQ(config.get_int("A"), 42);
  EXPECT_EQ(config.get_int("B"), -7);
  EXPECT_EQ(config.get_int("C"), 5);
  EXPECT_EQ(config.get_int("D"), INT64_MAX);
}

TEST(ConfigTest, IntRejectsJunkNamingKeyAndValue) {
  Config config;
  for (const std::string text : {"abc", "four", "0x10", "1.5", " 12", "--1"}) {
    config.set("WORKERS", text);
    const std::string what =
        message_of<std::invalid_argument>([&] { static_cast<void>(config.get_int("WORKERS")); });
    EXPECT_NE(what.find("WORKERS"), std::string::npos) << what;
    EXPECT_NE(what.find(text), std::string::npos) << what;
  }
}

TEST(ConfigTest, IntRejectsTrailingJunkNamingKeyAndValue) {
  Config config;
  for (const std::string text : {"12abc", "4 ", "10s", "3,000"}) {
    config.set("LENGTH", text);
    const std::string what =
        message_of<std::invalid_argument>([&] { static_cast<void>(config.get_int("LENGTH")); });
    EXPECT_NE(what.find("LENGTH"), std::string::npos) << what;
    EXPECT_NE(what.find(text), std::string::npos) << what;
  }
}

TEST(ConfigTest, IntRejectsTheEmptyString) {
  Config config;
  config.set("EMPTY_INT", "");
  const std::string what =
      message_of<std::invalid_argument>([&] { static_cast<void>(config.get_int("EMPTY_INT")); });
  EXPECT_NE(what.find("EMPTY_INT"), std::string::npos) << what;
}

TEST(ConfigTest, IntRejectsABoolean) {
  Config config;
  config.set("BOOL_INT", true);
  const std::string what =
      message_of<std::invalid_argument>([&] { static_cast<void>(config.get_int("BOOL_INT")); });
  EXPECT_NE(what.find("BOOL_INT"), std::string::npos) << what;
}

TEST(ConfigTest, IntRejectsValuesBeyondInt64NamingKeyAndValue) {
  Config config;
  const std::string huge = "99999999999999999999";
  config.set("HUGE", huge);
  const std::string what =
      message_of<std::out_of_range>([&] { static_cast<void>(config.get_int("HUGE")); });
  EXPECT_NE(what.find("HUGE"), std::string::npos) << what;
  EXPECT_NE(what.find(huge), std::string::npos) << what;
}

TEST(ConfigTest, IntRejectsValuesOutsideTheAllowedRangeNamingKeyAndValue) {
  Config config;
  config.set("MAX_WORKERS", "0");
  std::string what = message_of<std::out_of_range>(
      [&] { static_cast<void>(config.get_int("MAX_WORKERS", 1, 100)); });
  EXPECT_NE(what.find("MAX_WORKERS"), std::string::npos) << what;
  EXPECT_NE(what.find('0'), std::string::npos) << what;

  config.set("MAX_WORKERS", 101);
  what = message_of<std::out_of_range>(
      [&] { static_cast<void>(config.get_int("MAX_WORKERS", 1, 100)); });
  EXPECT_NE(what.find("MAX_WORKERS"), std::string::npos) << what;
  EXPECT_NE(what.find("101"), std::string::npos) << what;

  config.set("MAX_WORKERS", 100);
  EXPECT_EQ(config.get_int("MAX_WORKERS", 1, 100), 100);
  config.set("MAX_WORKERS", "1");
  EXPECT_EQ(config.get_int("MAX_WORKERS", 1, 100), 1);
}

TEST(ConfigTest, ParseIntFreeFunctionMatchesGetInt) {
  EXPECT_EQ(webexec::parse_int("K", ConfigValue(std::int64_t{12})), 12);
  EXPECT_EQ(webexec::parse_int("K", ConfigValue(std::string("12"))), 12);
  EXPECT_THROW(static_cast<void>(webexec::parse_int("K", ConfigValue(std::string("x")))),
               std::invalid_argument);
  EXPECT_THROW(static_cast<void>(webexec::parse_int("K", ConfigValue(std::int64_t{5}), 0, 4)),
               std::out_of_range);
}

TEST(ConfigTest, ToStringShowsEachAlternative) {
  EXPECT_EQ(webexec::to_string(ConfigValue(std::string("abc"))), "abc");
  EXPECT_EQ(webexec::to_string(ConfigValue(std::int64_t{-42})), "-42");
  EXPECT_EQ(webexec::to_string(ConfigValue(true)), "true");
  EXPECT_EQ(webexec::to_string(ConfigValue(false)), "false");
}

TEST(ConfigTest, ConcurrentSetAndGetFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  Config config;
  std::latch start(kThreads);
  std::vector<std::int64_t> defaults(kThreads, -1);
  std::vector<int> bad_reads(kThreads, 0);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = "T" + std::to_string(t);
      start.arrive_and_wait();
      // Every thread races to setdefault one shared key: exactly one wins.
      defaults[static_cast<std::size_t>(t)] =
          std::get<std::int64_t>(config.setdefault("SHARED", t));
      for (int i = 0; i < kRounds; ++i) {
        config.set(own, i);
        if (config.get_int(own) != i) ++bad_reads[static_cast<std::size_t>(t)];
        config.set("NOISE", i % 2 == 0 ? "yes" : "no");
        static_cast<void>(config.get_bool("NOISE"));
        static_cast<void>(config.keys());
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const auto winner = config.get_int("SHARED");
  ASSERT_TRUE(winner.has_value());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(defaults[static_cast<std::size_t>(t)], *winner) << "thread " << t;
    EXPECT_EQ(bad_reads[static_cast<std::size_t>(t)], 0) << "thread " << t;
    EXPECT_EQ(config.get_int("T" + std::to_string(t)), kRounds - 1);
  }
  EXPECT_EQ(config.keys().size(), static_cast<std::size_t>(kThreads) + 2);
}

}  // namespace
