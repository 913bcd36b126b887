// The deployment of README "Deployment": Debian's nginx with deploy/nginx.conf in front
// of the example service (issue 9 item 13). 200 sockets that trickle one header line
// every ~1-3 s block a bare httplib service; through nginx a normal client still gets
// every answer within 1 s. Starts its own nginx on a random loopback port with a
// temporary prefix; skipped if nginx is not installed (.ci/run installs it).
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&  // NOLINT
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {        // NOLINT
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {  // NOLINT
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A child process, killed (SIGTERM, then SIGKILL) and reaped on destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (::posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0) pid_ = -1;
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  [[nodiscard]] bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

/// Waits (bounded, for a child's startup) until GET / on `port` answers 200.
bool answers(int port) {
  httplib::Client probe("127.0.0.1", port);
  probe.set_connection_timeout(200ms);
  for (int i = 0; i < 250; ++i) {
    if (auto res = probe.Get("/"); res && res->status == 200) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(NginxDeployTest, TricklingSocketsDoNotStarveANormalClient) {
  const fs::path nginx = "/usr/sbin/nginx";
  if (!fs::exists(nginx)) GTEST_SKIP() << "nginx is not installed (apt-get install nginx-light)";
  const fs::path source = fs::path(__FILE__).parent_path().parent_path().parent_path();
  const fs::path service =
      fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "examples" / "service";
  ASSERT_TRUE(fs::exists(service)) << service;

  const fs::path prefix =
      fs::path(::testing::TempDir()) / ("webexec-nginx-" + std::to_string(::getpid()));
  fs::remove_all(prefix);
  fs::create_directories(prefix);
  const int service_port = free_port();
  const int nginx_port = free_port();
  std::string conf = read_file(source / "deploy" / "nginx.conf");
  ASSERT_FALSE(conf.empty());
  replace_all(conf, "@PREFIX@", prefix.string());
  replace_all(conf, "@LISTEN_PORT@", std::to_string(nginx_port));
  replace_all(conf, "@UPSTREAM_PORT@", std::to_string(service_port));
  std::ofstream(prefix / "nginx.conf") << conf;

  const Child app({service.string(), "--port", std::to_string(service_port), "--no-access-log"});
  ASSERT_TRUE(answers(service_port)) << "the service did not start";
  const Child proxy({nginx.string(), "-p", prefix.string(), "-c", (prefix / "nginx.conf").string(),
                     "-g", "daemon off;"});
  ASSERT_TRUE(answers(nginx_port)) << "nginx did not start: " << read_file(prefix / "error.log");

  // 200 trickling sockets: a request line, then one header line every 1-3 s.
  constexpr int kTricklers = 200;
  constexpr auto kRun = 6s;
  std::vector<int> socks;
  for (int i = 0; i < kTricklers; ++i) {
    const int fd = connect_to(nginx_port);
    ASSERT_GE(fd, 0);
    const std::string line = "GET /reports?steps=1 HTTP/1.1\r\nHost: x\r\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    socks.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread trickler([&] {
    std::mt19937 rng(7);
    std::vector<std::chrono::steady_clock::time_point> next(socks.size(),
                                                            std::chrono::steady_clock::now());
    int header = 0;
    while (!stop.load()) {
      const auto now = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < socks.size(); ++i) {
        if (now < next[i]) continue;
        const std::string line = "X-Slow-" + std::to_string(header++) + ": 1\r\n";
        (void)::send(socks[i], line.data(), line.size(), MSG_NOSIGNAL);
        next[i] = now + std::chrono::milliseconds(1000 + rng() % 2000);
      }
      std::this_thread::sleep_for(50ms);
    }
  });

  httplib::Client cli("127.0.0.1", nginx_port);
  cli.set_keep_alive(true);
  cli.set_read_timeout(5s);
  int answered = 0;
  std::chrono::steady_clock::duration worst{};
  const auto deadline = std::chrono::steady_clock::now() + kRun;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto t0 = std::chrono::steady_clock::now();
    auto res = cli.Get("/");
    const auto took = std::chrono::steady_clock::now() - t0;
    worst = std::max(worst, took);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(took, 1s) << "a normal client waited behind the trickling sockets";
    ++answered;
    std::this_thread::sleep_for(100ms);
  }
  stop.store(true);
  trickler.join();
  for (const int fd : socks) ::close(fd);
  EXPECT_GT(answered, 20);
  EXPECT_TRUE(app.alive());
  RecordProperty(
      "worst_ms",
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(worst).count()));
  fs::remove_all(prefix);
}

}  // namespace
