// The throwaway redis-server fixture (tests/redis/redis_server.hpp): starts on a free
// port of 127.0.0.1 in its own directory, answers PING, keeps an AOF across kill -9 and
// restart on the same port, and leaves no process behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

/// A redis-server that is not the fixture's, on 127.0.0.1:`port`; killed on scope exit.
class ForeignServer {
 public:
  ForeignServer(int port, const std::filesystem::path& dir) {
    std::vector<std::string> args = {"redis-server",
                                     "--bind",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port),
                                     "--dir",
                                     dir.string(),
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) {
        ::dup2(null, STDOUT_FILENO);
        ::dup2(null, STDERR_FILENO);
      }
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
  }
  ~ForeignServer() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ForeignServer(const ForeignServer&) = delete;
  ForeignServer& operator=(const ForeignServer&) = delete;
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

std::string info_process_id(Connection& c) {
  const std::string info = c.call({"INFO", "server"}).str;
  const auto at = info.find("process_id:");
  if (at == std::string::npos) return {};
  return info.substr(at + 11, info.find('\r', at) - at - 11);
}

// Review: the fixture took any PONG on its port as its own server's, so a test
// could run against someone else's redis-server (ours failing with "Address
// already in use" behind it).
TEST(RedisServerTest, NeverAttachesToAnotherServerOnItsPort) {
  RedisServer server;
  const int port = server.port();
  server.stop();
  const ForeignServer foreign(port, server.dir());
  const auto url = parse_redis_url("EXECUTOR_REDIS_URL", server.url());
  // Bounded wait for the foreign server's own reply.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool up = false;
  while (!up && std::chrono::steady_clock::now() < deadline) {
    try {
      Connection c(url);
      up = c.command({"PING"}).str == "PONG";
    } catch (const webexec::redis::ConnectionError&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_TRUE(up) << "the foreign redis-server did not come up";
  try {
    server.restart();  // same port: taken by the foreign server
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
    EXPECT_FALSE(server.running());
    return;
  }
  // If it did start, it must be our own process answering.
  auto c = connect(server);
  EXPECT_EQ(info_process_id(c), std::to_string(server.pid()))
      << "attached to the foreign server, pid " << foreign.pid();
}

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
