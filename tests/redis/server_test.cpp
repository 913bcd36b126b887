// The throwaway redis-server fixture (tests/redis/redis_server.hpp): starts on a free
// port of 127.0.0.1 in its own directory, answers PING, keeps an AOF across kill -9 and
// restart on the same port, and leaves no process behind.
#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "redis/connection.hpp"
#include "redis/redis_server.hpp"
#include "redis/url.hpp"

namespace {

using webexec::redis::Connection;
using webexec::redis::parse_redis_url;
using webexec_test::redis::RedisServer;
using webexec_test::redis::RedisServerOptions;

Connection connect(const RedisServer& server) {
  return Connection(parse_redis_url("EXECUTOR_REDIS_URL", server.url()));
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

TEST(RedisServerTest, StartsOnLoopbackAndAnswersPing) {
  RedisServer server;
  EXPECT_TRUE(server.running());
  EXPECT_GT(server.port(), 0);
  EXPECT_EQ(server.url(), "redis://127.0.0.1:" + std::to_string(server.port()) + "/0");
  auto c = connect(server);
  EXPECT_EQ(c.call({"PING"}).as_string(), "PONG");
  // Our own server: no persistence unless asked, bound to loopback only.
  const auto bind = c.call({"CONFIG", "GET", "bind"});
  ASSERT_EQ(bind.elements.size(), 2U);
  EXPECT_EQ(bind.elements[1].str, "127.0.0.1");
  const auto aof = c.call({"CONFIG", "GET", "appendonly"});
  EXPECT_EQ(aof.elements.at(1).str, "no");
  const auto save = c.call({"CONFIG", "GET", "save"});
  EXPECT_EQ(save.elements.at(1).str, "");
}

TEST(RedisServerTest, TwoServersUseDifferentPortsAndDirs) {
  RedisServer a;
  RedisServer b;
  EXPECT_NE(a.port(), b.port());
  EXPECT_NE(a.dir(), b.dir());
}

TEST(RedisServerTest, AofSurvivesKill9AndRestartOnTheSamePort) {
  RedisServer server({.appendonly = true, .appendfsync = "always"});
  const int port = server.port();
  {
    auto c = connect(server);
    EXPECT_EQ(c.call({"CONFIG", "GET", "appendfsync"}).elements.at(1).str, "always");
    c.call({"SET", "kept", "value"});
  }
  server.kill9();
  EXPECT_FALSE(server.running());
  server.restart();
  EXPECT_EQ(server.port(), port);
  auto c = connect(server);
  EXPECT_EQ(c.call({"GET", "kept"}).as_string(), "value");
}

TEST(RedisServerTest, WithoutPersistenceARestartLosesEverything) {
  RedisServer server;
  connect(server).call({"SET", "lost", "value"});
  server.kill9();
  server.restart();
  EXPECT_TRUE(connect(server).call({"GET", "lost"}).is_nil());
}

TEST(RedisServerTest, StopIsCleanAndStartComesBack) {
  RedisServer server({.appendonly = true});
  connect(server).call({"SET", "k", "v"});
  server.stop();
  EXPECT_FALSE(server.running());
  server.start();
  EXPECT_EQ(connect(server).call({"GET", "k"}).as_string(), "v");
}

TEST(RedisServerTest, PausedServerCanBeStopped) {
  RedisServer server;
  server.pause();
  server.stop();
  EXPECT_FALSE(server.running());
}

TEST(RedisServerTest, DestructorKillsTheServerAndRemovesItsDir) {
  pid_t pid = 0;
  std::filesystem::path dir;
  {
    RedisServer server;
    pid = server.pid();
    dir = server.dir();
    EXPECT_TRUE(process_exists(pid));
    EXPECT_TRUE(std::filesystem::exists(dir));
  }
  EXPECT_FALSE(process_exists(pid));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RedisServerTest, PasswordAndUnixSocket) {
  RedisServer server({.password = "fixture-pw", .unix_socket = true});
  EXPECT_TRUE(std::filesystem::exists(server.socket_path()));
  auto tcp = connect(server);
  EXPECT_EQ(tcp.call({"PING"}).as_string(), "PONG");
  Connection local(parse_redis_url(
      "EXECUTOR_REDIS_URL", "unix://" + server.socket_path().string() + "?password=fixture-pw"));
  EXPECT_EQ(local.call({"PING"}).as_string(), "PONG");
}

}  // namespace
