// Config: Flask's app.config with strict typed reads (Step 2). Values are
// strings, integers or booleans; setdefault follows Python's dict.setdefault;
// booleans and integers parse strictly and every error names the key and value.
#include "webexec/config.hpp"

#include <chrono>
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
using namespace std::chrono_literals;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// The message of the `E` that parse_duration(key, value) throws.
template <typename E>
std::string duration_error(const ConfigValue& value) {
  return message_of<E>([&] { static_cast<void>(webexec::parse_duration("TIMEOUT", value)); });
}

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

// ---------------------------------------------------------------- one grammar (issue 8 item 12)

TEST(ConfigTest, IntRejectsADoubleSignAndWhitespaceAnywhere) {
  // '+-5' used to parse as -5: the '+' was skipped and from_chars took "-5".
  for (const std::string text : {"+-5", "-+5", "++5", "--5", "\t5", "5\n", " 5", "5 ", "+ 5",
                                 "0x10", "1e3", "1.0", "+", "-"}) {
    const std::string what = message_of<std::invalid_argument>(
        [&] { static_cast<void>(webexec::parse_int("WORKERS", ConfigValue(text))); });
    EXPECT_TRUE(contains(what, "WORKERS")) << what;
    EXPECT_TRUE(contains(what, "is not an integer")) << text << ": " << what;
  }
}

TEST(ConfigTest, IntRangeErrorsNameTheBoundThatIsCrossed) {
  std::string what = message_of<std::out_of_range>(
      [&] { static_cast<void>(webexec::parse_int("N", ConfigValue(std::string("0")), 1, 256)); });
  EXPECT_TRUE(contains(what, "N='0' is below the minimum of 1")) << what;
  what = message_of<std::out_of_range>(
      [&] { static_cast<void>(webexec::parse_int("N", ConfigValue(std::int64_t{300}), 1, 256)); });
  EXPECT_TRUE(contains(what, "N=300 is above the maximum of 256")) << what;
  // Beyond int64 on either side: still the right bound, not "invalid".
  what = message_of<std::out_of_range>([&] {
    static_cast<void>(webexec::parse_int("N", ConfigValue(std::string("-99999999999999999999"))));
  });
  EXPECT_TRUE(contains(what, "is below the minimum of -9223372036854775808")) << what;
  what = message_of<std::out_of_range>([&] {
    static_cast<void>(webexec::parse_int("N", ConfigValue(std::string("+99999999999999999999"))));
  });
  EXPECT_TRUE(contains(what, "is above the maximum of 9223372036854775807")) << what;
}

TEST(ConfigTest, IntEmptyAndBooleanSayWhatIsWrong) {
  EXPECT_TRUE(contains(message_of<std::invalid_argument>([&] {
                         static_cast<void>(webexec::parse_int("N", ConfigValue(std::string())));
                       }),
                       "N='' is empty"));
  EXPECT_TRUE(contains(message_of<std::invalid_argument>(
                           [&] { static_cast<void>(webexec::parse_int("N", ConfigValue(true))); }),
                       "N=true is a boolean, not an integer"));
}

TEST(ConfigTest, DurationAcceptsDecimalSeconds) {
  const std::vector<std::pair<ConfigValue, std::chrono::nanoseconds>> cases = {
      {std::string("30"), 30s},
      {std::string("+2"), 2s},
      {std::string("0.5"), 500ms},
      {std::string(".25"), 250ms},
      {std::string("5."), 5s},
      {std::string("1.5"), 1500ms},
      {std::string("0.001"), 1ms},
      {std::string("1e-3"), 1ms},
      {std::string("2E2"), 200s},
      {std::string("1.5e+1"), 15s},
      {std::string("0.0000012e3"), 1200us},
      {std::string("31536000"), 24h * 365},
      {std::string("007"), 7s},
      {std::int64_t{40}, 40s},
      {std::int64_t{31536000}, 24h * 365},
  };
  for (const auto& [value, expected] : cases) {
    EXPECT_EQ(webexec::parse_duration("TIMEOUT", value), expected) << webexec::to_string(value);
  }
  webexec::Config config;
  config.set("T", "2.5");
  EXPECT_EQ(config.get_duration("T"), 2500ms);
  EXPECT_FALSE(config.get_duration("MISSING").has_value());
}

TEST(ConfigTest, DurationRejectsWhitespaceHexInfNanAndStraySigns) {
  // Each used to be accepted by strtod (' 5', '\t5', '0x1p-3', 'inf') or
  // misreported as out of range ('+-5').
  for (const std::string text :
       {" 5",  "\t5",      "5 ",  "5\n", "0x1p-3", "0x10",  "inf",   "-inf",
        "nan", "infinity", "+-5", "-+5", "--5",    "1e",    "e5",    ".",
        "+.",  "1.2.3",    "5s",  "1,5", "1e+-3",  "1e3.5", "1_000", "\xef\xbc\x95"}) {
    const std::string what = duration_error<std::invalid_argument>(ConfigValue(text));
    EXPECT_TRUE(contains(what, "TIMEOUT")) << what;
    EXPECT_TRUE(contains(what, "is not a number")) << text << ": " << what;
  }
  EXPECT_TRUE(
      contains(duration_error<std::invalid_argument>(ConfigValue(std::string())), "is empty"));
  EXPECT_TRUE(contains(duration_error<std::invalid_argument>(ConfigValue(false)),
                       "is a boolean, not a number of seconds"));
}

TEST(ConfigTest, DurationBelowTheMinimumIsRejectedNotRoundedToZero) {
  // '1e-12' used to become 0 s, so every process job was killed at once.
  EXPECT_EQ(duration_error<std::out_of_range>(ConfigValue(std::string("1e-12"))),
            "TIMEOUT='1e-12' is below the minimum of 0.001 s");
  for (const ConfigValue& value :
       {ConfigValue(std::string("0")), ConfigValue(std::string("-0")),
        ConfigValue(std::string("0.0009")), ConfigValue(std::string("-5")),
        ConfigValue(std::string("1e-400")), ConfigValue(std::string("-1e400")),
        ConfigValue(std::string("0e99999999999999999999")), ConfigValue(std::int64_t{0}),
        ConfigValue(std::int64_t{-1}), ConfigValue(std::int64_t{INT64_MIN})}) {
    EXPECT_TRUE(contains(duration_error<std::out_of_range>(value), "below the minimum of 0.001 s"))
        << webexec::to_string(value);
  }
}

TEST(ConfigTest, DurationAboveTheMaximumIsRejected) {
  // '1e10' used to be reported as "must be > 0".
  EXPECT_EQ(duration_error<std::out_of_range>(ConfigValue(std::string("1e10"))),
            "TIMEOUT='1e10' is above the maximum of 31536000 s");
  for (const ConfigValue& value :
       {ConfigValue(std::string("31536000.001")), ConfigValue(std::string("1e400")),
        ConfigValue(std::string("99999999999999999999")), ConfigValue(std::int64_t{31536001}),
        ConfigValue(std::int64_t{INT64_MAX})}) {
    EXPECT_TRUE(
        contains(duration_error<std::out_of_range>(value), "above the maximum of 31536000 s"))
        << webexec::to_string(value);
  }
}

TEST(ConfigTest, DurationHonoursCustomBounds) {
  EXPECT_EQ(webexec::parse_duration("T", ConfigValue(std::string("0.25")), 250ms, 1s), 250ms);
  const std::string what = message_of<std::out_of_range>([] {
    static_cast<void>(webexec::parse_duration("T", ConfigValue(std::string("2")), 250ms, 1500ms));
  });
  EXPECT_EQ(what, "T='2' is above the maximum of 1.5 s");
  EXPECT_THROW(
      static_cast<void>(webexec::parse_duration("T", ConfigValue(std::int64_t{1}), 0ms, 1s)),
      std::invalid_argument);
}

TEST(ConfigTest, IntegerAndDurationAgreeOnWhatIsNotANumber) {
  // One grammar: whatever no integer key accepts as text, no duration key
  // accepts either (durations only add a fraction and an exponent).
  for (const std::string text :
       {" 1", "1 ", "\t1", "\n1", "1\r", "0x1", "+-1", "-+1", "++1", "1-", "1+", "", "inf"}) {
    EXPECT_THROW(static_cast<void>(webexec::parse_int("K", ConfigValue(text))),
                 std::invalid_argument)
        << text;
    EXPECT_THROW(static_cast<void>(webexec::parse_duration("K", ConfigValue(text))),
                 std::invalid_argument)
        << text;
  }
  for (const std::string text : {"+1", "1", "0042"}) {
    EXPECT_EQ(webexec::parse_duration("K", ConfigValue(text)),
              std::chrono::seconds(webexec::parse_int("K", ConfigValue(text))))
        << text;
  }
}

}  // namespace
