#include "redis/redis_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>

namespace webexec_test::redis {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// A port the kernel just handed out on 127.0.0.1 (free at that moment; the
/// caller retries if the server then loses a race for it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (::bind(fd, sa, sizeof addr) != 0 || ::getsockname(fd, sa, &len) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    throw_errno("bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// `args` as one RESP array of bulk strings.
std::string resp_command(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

/// The `process_id` that the server on 127.0.0.1:`port` reports in INFO server
/// (after AUTH `password`, if any), or -1 if nothing answers it within 1 s. A
/// server that answers PING may be someone else's, started on a port we picked.
pid_t server_pid_on(int port, const std::string& password) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  pid_t found = -1;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request;
    if (!password.empty()) request += resp_command({"AUTH", password});
    request += resp_command({"INFO", "server"});
    request += resp_command({"PING"});  // -LOADING while it reads its AOF: not ready
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      std::string answer;
      const auto deadline = Clock::now() + std::chrono::seconds(1);
      while (Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 100) != 1) continue;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        answer.append(buf, static_cast<std::size_t>(n));
        if (answer.find('-') == 0 || answer.find("\r\n-") != std::string::npos) break;  // error
        if (answer.size() < 7 || answer.compare(answer.size() - 7, 7, "+PONG\r\n") != 0) continue;
        const auto key = answer.find("\r\nprocess_id:");
        if (key == std::string::npos) break;
        const auto from = key + 13;
        const auto end = answer.find("\r\n", from);
        found =
            static_cast<pid_t>(std::strtol(answer.substr(from, end - from).c_str(), nullptr, 10));
        break;
      }
    }
  }
  ::close(fd);
  return found;
}

std::filesystem::path make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "webexec-redis-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  return pattern;
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)), dir_(make_temp_dir()) {
  try {
    start();
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw;
  }
}

RedisServer::~RedisServer() {
  if (running()) reap(SIGKILL);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url(int db) const {
  std::string out = "redis://";
  if (!options_.password.empty()) out += ":" + options_.password + "@";
  out += "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  return out;
}

std::string RedisServer::log_tail() const {
  std::ifstream in(dir_ / "redis.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::ifstream out(dir_ / "redis.out");
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  std::string tail;
  const std::size_t from = lines.size() > 15 ? lines.size() - 15 : 0;
  for (std::size_t i = from; i < lines.size(); ++i) tail += lines[i] + "\n";
  return tail;
}

void RedisServer::start() {
  if (running()) return;
  const bool fixed_port = port_ != 0;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (!fixed_port) port_ = free_port();
    if (spawn_and_wait()) return;
  }
  throw std::runtime_error("redis-server: port 127.0.0.1:" + std::to_string(port_) +
                           " stayed in use; log:\n" + log_tail());
}

bool RedisServer::spawn_and_wait() {
  std::vector<std::string> args = {"redis-server",
                                   "--bind",
                                   "127.0.0.1",
                                   "--port",
                                   std::to_string(port_),
                                   "--dir",
                                   dir_.string(),
                                   "--logfile",
                                   (dir_ / "redis.log").string(),
                                   "--daemonize",
                                   "no",
                                   "--supervised",
                                   "no",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   options_.appendonly ? "yes" : "no",
                                   "--appendfsync",
                                   options_.appendfsync};
  if (!options_.password.empty()) {
    args.insert(args.end(), {"--requirepass", options_.password});
  }
  if (options_.unix_socket) {
    args.insert(args.end(), {"--unixsocket", socket_path().string(), "--unixsocketperm", "700"});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out_path = (dir_ / "redis.out").string();

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork redis-server");
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    ::close_range(3, ~0U, 0);
    ::execvp("redis-server", argv.data());
    ::_exit(127);
  }
  pid_ = pid;

  // Bounded retries: up to 10 s, polling every 2..50 ms.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  auto pause = std::chrono::milliseconds(2);
  while (Clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      const std::string log = log_tail();
      if (log.find("Address already in use") != std::string::npos) return false;
      throw std::runtime_error("redis-server exited at start (status " + std::to_string(status) +
                               "); log:\n" + log);
    }
    // Ours only if it is our child answering, not another server on this port.
    if (server_pid_on(port_, options_.password) == pid_) return true;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  reap(SIGKILL);
  throw std::runtime_error("redis-server on 127.0.0.1:" + std::to_string(port_) +
                           " did not answer INFO as our own process within 10 s; log:\n" +
                           log_tail());
}

void RedisServer::reap(int signal) {
  if (!running()) return;
  ::kill(pid_, signal);
  if (signal == SIGTERM) {
    ::kill(pid_, SIGCONT);  // a paused server must run to handle SIGTERM
    // A clean shutdown is quick; do not wait forever for it.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid_, SIGKILL);
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void RedisServer::stop() { reap(SIGTERM); }

void RedisServer::kill9() {
  if (running()) ::kill(pid_, SIGCONT);
  reap(SIGKILL);
}

void RedisServer::pause() {
  if (running()) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (running()) ::kill(pid_, SIGCONT);
}

void RedisServer::restart() {
  if (running()) {
    ::kill(pid_, SIGCONT);
    stop();
  }
  start();
}

}  // namespace webexec_test::redis
