// The internal hiredis connection (src/redis/connection.hpp) against a real
// redis-server of our own: binary-safe commands, owned replies, AUTH and SELECT,
// pipelines, and clear errors (endpoint and command named, never the password or the
// arguments) with bounded waits when the server is unreachable, frozen or killed.
#include "redis/connection.hpp"

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "redis/redis_server.hpp"
#include "redis/url.hpp"
#include "support/core_fixtures.hpp"

namespace {

using webexec::redis::CommandError;
using webexec::redis::Connection;
using webexec::redis::ConnectionError;
using webexec::redis::ConnectOptions;
using webexec::redis::parse_redis_url;
using webexec::redis::Reply;
using webexec_test::core::contains;
using webexec_test::core::message_of;
using webexec_test::redis::RedisServer;
using webexec_test::redis::RedisServerOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

webexec::redis::RedisUrl url_of(const std::string& text) {
  return parse_redis_url("EXECUTOR_REDIS_URL", text);
}

TEST(RedisConnectionTest, CommandsAreBinarySafe) {
  RedisServer server;
  Connection c(url_of(server.url()));
  const std::string key("k\0ey", 4);
  std::string value("a\0b\r\n\xff", 6);
  value += std::string(100000, '\0');
  EXPECT_EQ(c.call({"SET", key, value}).as_string(), "OK");
  const Reply r = c.call({"GET", key});
  ASSERT_EQ(r.type, Reply::Type::string);
  EXPECT_EQ(r.str, value);
}

TEST(RedisConnectionTest, ReplyTypes) {
  RedisServer server;
  Connection c(url_of(server.url()));
  EXPECT_TRUE(c.call({"GET", "missing"}).is_nil());
  EXPECT_EQ(c.call({"INCRBY", "n", "-5"}).as_integer(), -5);
  EXPECT_EQ(c.call({"PING"}).type, Reply::Type::status);
  c.call({"RPUSH", "l", "a", "b"});
  const Reply list = c.call({"LRANGE", "l", "0", "-1"});
  ASSERT_EQ(list.type, Reply::Type::array);
  ASSERT_EQ(list.elements.size(), 2U);
  EXPECT_EQ(list.elements[1].str, "b");
  const Reply nested = c.call({"EVAL", "return {1, {'x', false}}", "0"});
  ASSERT_EQ(nested.elements.size(), 2U);
  EXPECT_EQ(nested.elements[1].elements[0].str, "x");
  EXPECT_TRUE(nested.elements[1].elements[1].is_nil());
  const Reply err = c.command({"INCR", "l"});
  EXPECT_TRUE(err.is_error());
  EXPECT_TRUE(contains(err.str, "WRONGTYPE")) << err.str;
  EXPECT_THROW(static_cast<void>(err.as_string()), std::logic_error);
}

TEST(RedisConnectionTest, ErrorReplyThrowsCommandErrorNamingCommandNotArguments) {
  RedisServer server;
  Connection c(url_of(server.url()));
  c.call({"SET", "s", "v"});
  try {
    c.call({"HSET", "s", "field-argument", "value-argument"});
    FAIL() << "no CommandError";
  } catch (const CommandError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), "WRONGTYPE");
    EXPECT_TRUE(contains(what, "HSET")) << what;
    EXPECT_TRUE(contains(what, server.url())) << what;
    EXPECT_FALSE(contains(what, "value-argument")) << what;
  }
  EXPECT_FALSE(c.broken());  // an error reply does not break the connection
  EXPECT_EQ(c.call({"PING"}).as_string(), "PONG");
}

TEST(RedisConnectionTest, PipelineIsOneRoundTripOfManyReplies) {
  RedisServer server;
  Connection c(url_of(server.url()));
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 100; ++i) commands.push_back({"INCR", "counter"});
  commands.push_back({"HGET", "counter", "x"});  // an error in place
  const auto replies = c.pipeline(commands);
  ASSERT_EQ(replies.size(), 101U);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(replies[static_cast<std::size_t>(i)].integer, i + 1);
  EXPECT_TRUE(replies[100].is_error());
}

// Review: an empty command after SET was refused after SET was appended, so SET's
// +OK stayed unread and the next command got it instead of its own reply.
TEST(RedisConnectionTest, PipelineWithAnEmptyCommandSendsNothingAndKeepsRepliesInStep) {
  RedisServer server;
  Connection c(url_of(server.url()));
  EXPECT_THROW(static_cast<void>(c.pipeline({{"SET", "a", "1"}, {}})), std::invalid_argument);
  if (c.broken()) c.reconnect();
  const Reply pong = c.command({"PING"});
  EXPECT_EQ(pong.str, "PONG");
  EXPECT_TRUE(c.command({"GET", "a"}).is_nil());  // nothing of the bad pipeline was sent
}

// Review: a zero timeout became a zero SO_RCVTIMEO, which blocks forever.
TEST(RedisConnectionTest, NonPositiveTimeoutsAreRefusedNamingFieldAndValue) {
  const auto url = url_of("redis://127.0.0.1:1/0");
  EXPECT_TRUE(contains(
      message_of<std::invalid_argument>([&] { Connection c(url, {.connect_timeout = 0ms}); }),
      "connect_timeout must be more than 0 ms, not 0 ms"));
  EXPECT_TRUE(contains(
      message_of<std::invalid_argument>([&] { Connection c(url, {.command_timeout = -3ms}); }),
      "command_timeout must be more than 0 ms, not -3 ms"));
  RedisServer server;
  Connection c(url_of(server.url()));
  EXPECT_TRUE(contains(message_of<std::invalid_argument>([&] { c.set_timeout(0ms); }),
                       "command_timeout must be more than 0 ms, not 0 ms"));
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST(RedisConnectionTest, SelectsTheUrlsDatabase) {
  RedisServer server;
  Connection db3(url_of(server.url(3)));
  db3.call({"SET", "where", "three"});
  Connection db0(url_of(server.url(0)));
  EXPECT_TRUE(db0.call({"GET", "where"}).is_nil());
  EXPECT_EQ(db3.call({"GET", "where"}).as_string(), "three");
  const std::string message =
      message_of<ConnectionError>([&] { Connection bad(url_of(server.url(999))); });
  EXPECT_TRUE(contains(message, "SELECT 999")) << message;
}

TEST(RedisConnectionTest, AuthWithPasswordAndNeverShowsIt) {
  RedisServer server({.password = "right-password"});
  Connection good(url_of(server.url()));
  EXPECT_EQ(good.call({"PING"}).as_string(), "PONG");

  const std::string endpoint = "redis://127.0.0.1:" + std::to_string(server.port()) + "/0";
  const std::string message = message_of<ConnectionError>(
      [&] { Connection bad(url_of("redis://:wrong-password@" + endpoint.substr(8))); });
  EXPECT_TRUE(contains(message, "AUTH")) << message;
  EXPECT_TRUE(contains(message, endpoint)) << message;
  EXPECT_FALSE(contains(message, "wrong-password")) << message;

  Connection anonymous(url_of(endpoint));
  const std::string noauth = message_of<CommandError>([&] { anonymous.call({"GET", "x"}); });
  EXPECT_TRUE(contains(noauth, "NOAUTH")) << noauth;
}

TEST(RedisConnectionTest, UnreachableServerIsAClearBoundedError) {
  int port = 0;
  {
    RedisServer server;
    port = server.port();
  }
  const std::string endpoint = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  const auto start = Clock::now();
  const std::string message = message_of<ConnectionError>(
      [&] { Connection c(url_of(endpoint), ConnectOptions{.connect_timeout = 500ms}); });
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_TRUE(contains(message, endpoint)) << message;
  EXPECT_TRUE(contains(message, "cannot connect")) << message;
}

TEST(RedisConnectionTest, FrozenServerTimesOutThenReconnects) {
  RedisServer server;
  Connection c(url_of(server.url()), ConnectOptions{.command_timeout = 300ms});
  server.pause();
  const auto start = Clock::now();
  const std::string message = message_of<ConnectionError>([&] { c.call({"PING"}); });
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 5s);
  EXPECT_TRUE(contains(message, "PING")) << message;
  EXPECT_TRUE(contains(message, "no reply within 300 ms")) << message;
  EXPECT_TRUE(c.broken());
  // A broken context is never reused: the next command fails at once.
  const std::string again = message_of<ConnectionError>([&] { c.call({"PING"}); });
  EXPECT_TRUE(contains(again, "reconnect")) << again;
  server.resume();
  c.reconnect();
  EXPECT_FALSE(c.broken());
  EXPECT_EQ(c.call({"PING"}).as_string(), "PONG");
}

TEST(RedisConnectionTest, KilledServerIsAnErrorNotASigpipe) {
  RedisServer server;
  Connection c(url_of(server.url()), ConnectOptions{.command_timeout = 2s});
  c.call({"PING"});
  server.kill9();
  // A large write into a dead peer makes write(2) fail with EPIPE: SIGPIPE must not
  // kill the test process.
  const std::string big(8 << 20, 'x');
  const std::string message = message_of<ConnectionError>([&] { c.call({"SET", "k", big}); });
  EXPECT_TRUE(contains(message, "SET")) << message;
  EXPECT_TRUE(c.broken());
  server.restart();
  c.reconnect();
  EXPECT_EQ(c.call({"PING"}).as_string(), "PONG");
}

TEST(RedisConnectionTest, UnixSocket) {
  RedisServer server({.unix_socket = true});
  Connection c(url_of("unix://" + server.socket_path().string() + "?db=2"));
  c.call({"SET", "k", "v"});
  Connection tcp(url_of(server.url(2)));
  EXPECT_EQ(tcp.call({"GET", "k"}).as_string(), "v");
  EXPECT_EQ(c.endpoint(), "unix://" + server.socket_path().string() + "?db=2");
}

TEST(RedisConnectionTest, MovedConnectionKeepsWorking) {
  RedisServer server;
  Connection a(url_of(server.url()));
  Connection b(std::move(a));
  EXPECT_EQ(b.call({"PING"}).as_string(), "PONG");
}

}  // namespace
