// The redis engine's configuration keys (src/redis/options.hpp): defaults, the NAME_
// prefix, strict values with errors naming the key and the value, and the rule that
// the heartbeat is shorter than the visibility timeout. No server needed.
#include "redis/options.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace {

using webexec::redis::parse_redis_options;
using webexec::redis::RedisOptions;
using namespace std::chrono_literals;

using Keys = std::map<std::string, std::string, std::less<>>;

RedisOptions parse(const Keys& keys, std::string_view prefix = {}) {
  return parse_redis_options(
      [&](std::string_view key) -> std::optional<std::string> {
        const auto it = keys.find(key);
        if (it == keys.end()) return std::nullopt;
        return it->second;
      },
      prefix);
}

/// The message of what parse(keys) throws, or "" (and a failure) if it does not.
std::string error_of(const Keys& keys, std::string_view prefix = {}) {
  try {
    static_cast<void>(parse(keys, prefix));
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted " << testing::PrintToString(keys);
  return "";
}

testing::AssertionResult has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

TEST(RedisOptionsTest, DefaultsWithoutAnyKey) {
  const RedisOptions o = parse({});
  EXPECT_EQ(o.url.describe(), "redis://127.0.0.1:6379/0");
  EXPECT_EQ(o.queue, "default");
  EXPECT_EQ(o.visibility_timeout, 30s);
  EXPECT_EQ(o.heartbeat, 10s);
  EXPECT_EQ(o.max_retries, 3);
  EXPECT_EQ(o.result_ttl, 24h);
  EXPECT_FALSE(o.task_timeout);
  EXPECT_EQ(o.max_payload, std::size_t{64} << 20U);
  EXPECT_GE(o.max_workers, 1);
  const auto q = o.queue_options();
  EXPECT_EQ(q.max_attempts, 4);
  EXPECT_EQ(q.time_limit, 24h);
  const auto w = o.worker_options();
  EXPECT_EQ(w.threads, o.max_workers);
  EXPECT_EQ(w.heartbeat, 10s);
  EXPECT_EQ(o.submitter_options().max_payload, o.max_payload);
}

TEST(RedisOptionsTest, EveryKeyIsReadWithThePrefix) {
  const Keys keys = {{"R_EXECUTOR_REDIS_URL", "redis://:pw@10.0.0.5:6380/2"},
                     {"R_EXECUTOR_REDIS_QUEUE", "reports"},
                     {"R_EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "2.5"},
                     {"R_EXECUTOR_REDIS_HEARTBEAT", "0.5"},
                     {"R_EXECUTOR_REDIS_MAX_RETRIES", "0"},
                     {"R_EXECUTOR_REDIS_RESULT_TTL", "60"},
                     {"R_EXECUTOR_TASK_TIMEOUT", "0.0004"},  // below 1 ms: refused
                     {"R_EXECUTOR_MAX_PAYLOAD", "1024"},
                     {"R_EXECUTOR_MAX_WORKERS", "7"},
                     // Unprefixed keys belong to another executor.
                     {"EXECUTOR_REDIS_QUEUE", "other"}};
  EXPECT_TRUE(has(error_of(keys, "R_"), "R_EXECUTOR_TASK_TIMEOUT='0.0004'"));
  Keys good = keys;
  good["R_EXECUTOR_TASK_TIMEOUT"] = "1.0001";
  const RedisOptions o = parse(good, "R_");
  EXPECT_EQ(o.url.host, "10.0.0.5");
  EXPECT_EQ(o.url.password, "pw");
  EXPECT_EQ(o.url.db, 2);
  EXPECT_EQ(o.queue, "reports");
  EXPECT_EQ(o.visibility_timeout, 2500ms);
  EXPECT_EQ(o.heartbeat, 500ms);
  EXPECT_EQ(o.max_retries, 0);
  EXPECT_EQ(o.queue_options().max_attempts, 1);
  EXPECT_EQ(o.result_ttl, 60s);
  EXPECT_EQ(o.task_timeout, 1001ms);  // rounded up to whole milliseconds
  EXPECT_EQ(o.queue_options().time_limit, 1001ms);
  EXPECT_EQ(o.max_payload, 1024U);
  EXPECT_EQ(o.max_workers, 7);
  EXPECT_EQ(o.worker_options().queue, "reports");
}

TEST(RedisOptionsTest, BadValuesNameTheKeyAndTheValue) {
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_URL", "http://x"}}), "EXECUTOR_REDIS_URL"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_URL", "redis://:s3cret@h:0"}}), "***"));
  EXPECT_FALSE(has(error_of({{"EXECUTOR_REDIS_URL", "redis://:s3cret@h:0"}}), "s3cret"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_QUEUE", ""}}), "EXECUTOR_REDIS_QUEUE='' is empty"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_QUEUE", "a{b}"}}),
                  "EXECUTOR_REDIS_QUEUE='a{b}' contains '{' or '}'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_QUEUE", "a\nb"}}), "'a\\nb'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "30s"}}),
                  "EXECUTOR_REDIS_VISIBILITY_TIMEOUT='30s'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "0"}}),
                  "EXECUTOR_REDIS_VISIBILITY_TIMEOUT='0'"));
  EXPECT_TRUE(
      has(error_of({{"EXECUTOR_REDIS_MAX_RETRIES", "-1"}}), "EXECUTOR_REDIS_MAX_RETRIES='-1'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_MAX_RETRIES", "three"}}),
                  "EXECUTOR_REDIS_MAX_RETRIES='three'"));
  EXPECT_TRUE(
      has(error_of({{"EXECUTOR_REDIS_RESULT_TTL", "nan"}}), "EXECUTOR_REDIS_RESULT_TTL='nan'"));
  EXPECT_TRUE(
      has(error_of({{"EXECUTOR_MAX_PAYLOAD", "2147483648"}}), "EXECUTOR_MAX_PAYLOAD='2147483648'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_MAX_WORKERS", "0"}}), "EXECUTOR_MAX_WORKERS='0'"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_MAX_WORKERS", "100000"}}), "(EXECUTOR_TYPE=redis)"));
}

TEST(RedisOptionsTest, HeartbeatMustBeShorterThanTheVisibilityTimeout) {
  const std::string e =
      error_of({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "5"}, {"EXECUTOR_REDIS_HEARTBEAT", "5"}});
  EXPECT_TRUE(has(e,
                  "EXECUTOR_REDIS_HEARTBEAT='5' must be less than "
                  "EXECUTOR_REDIS_VISIBILITY_TIMEOUT (5000 ms)"));
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_HEARTBEAT", "45"}}),
                  "EXECUTOR_REDIS_HEARTBEAT='45' must be less than"));
  // Without a heartbeat key the default follows the visibility timeout.
  EXPECT_EQ(parse({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "3"}}).heartbeat, 1s);
  EXPECT_EQ(parse({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "0.002"}}).heartbeat, 1ms);
  EXPECT_TRUE(has(error_of({{"EXECUTOR_REDIS_VISIBILITY_TIMEOUT", "0.001"}}),
                  "EXECUTOR_REDIS_HEARTBEAT (default 1 ms) must be less than"));
}

}  // namespace
