// Test support for the http tests: a real httplib::Server on 127.0.0.1 with an
// ephemeral port, served on a background thread; real httplib::Clients; a gate that
// blocks tasks until the test opens it (and opens itself on destruction, so a failed
// assertion never leaves a task blocked); a raw-socket request for malformed input.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>

namespace webexec_test {

/// How long a test waits for something that should happen at once (generous for
/// sanitizer builds on a loaded 2-core machine; ctest's 120 s timeout is the backstop).
inline constexpr std::chrono::seconds kPatience{30};

/// A one-shot signal: `open()` releases every `wait()`. Tasks capture a `handle()`,
/// which shares the state and may outlive the gate. Destroying the gate opens it, so a
/// failed assertion never leaves a task blocked.
class Gate {
  struct State {
    std::once_flag once;
    std::promise<void> promise;
    std::shared_future<void> token = promise.get_future().share();
  };

 public:
  /// A copyable reference to a gate's state.
  class Handle {
   public:
    void open() const {
      std::call_once(state_->once, [s = state_.get()] { s->promise.set_value(); });
    }
    /// True if opened within `timeout`.
    [[nodiscard]] bool wait(std::chrono::nanoseconds timeout = kPatience) const {
      return state_->token.wait_for(timeout) == std::future_status::ready;
    }

   private:
    friend class Gate;
    explicit Handle(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
  };

  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() { open(); }

  [[nodiscard]] Handle handle() const { return handle_; }
  void open() const { handle_.open(); }
  [[nodiscard]] bool wait(std::chrono::nanoseconds timeout = kPatience) const {
    return handle_.wait(timeout);
  }

 private:
  Handle handle_{std::make_shared<State>()};
};

/// A real httplib::Server bound to 127.0.0.1 on an ephemeral port.
///
/// Configure `server()` (routes, hooks), then `start()`. The destructor (or `stop()`)
/// stops the server and joins its thread. Destroy clients first: an idle keep-alive
/// connection holds a server thread until it closes.
class HttpServer {
 public:
  explicit HttpServer(std::size_t threads = 8) {
    server_.set_tcp_nodelay(true);  // Debian's default leaves Nagle on (~40 ms per response)
    server_.set_keep_alive_max_count(100000);
    server_.set_keep_alive_timeout(1);
    server_.set_read_timeout(std::chrono::seconds(30));
    server_.set_write_timeout(std::chrono::seconds(30));
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer() { stop(); }

  [[nodiscard]] httplib::Server& server() noexcept { return server_; }
  [[nodiscard]] int port() const noexcept { return port_; }

  /// Binds, serves on a background thread and waits until the server runs.
  /// Throws: std::runtime_error if it cannot bind or does not start in time.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("cannot bind 127.0.0.1:0");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // 0.11.4 has no wait_until_ready(). The socket already listens (connections
    // queue); wait for the accept loop so that stop() can end it.
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (!server_.is_running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("httplib::Server did not start");
      }
      std::this_thread::yield();
    }
  }

  void stop() {
    if (!thread_.joinable()) return;
    server_.stop();
    thread_.join();
  }

  /// A client for this server (keep-alive on, generous timeouts).
  [[nodiscard]] httplib::Client client() const {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);
    cli.set_connection_timeout(std::chrono::seconds(kPatience));
    cli.set_read_timeout(std::chrono::seconds(kPatience));
    cli.set_write_timeout(std::chrono::seconds(kPatience));
    return cli;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
};

/// Sends `bytes` on a fresh TCP connection to 127.0.0.1:`port` and returns all it
/// reads until the peer closes (or `kPatience` passes).
/// Throws: std::runtime_error if it cannot connect.
inline std::string raw_request(int port, const std::string& bytes) {
  struct Socket {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    Socket() = default;
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket() {
      if (fd >= 0) ::close(fd);
    }
  } sock;
  const int fd = sock.fd;
  if (fd < 0) throw std::runtime_error("socket() failed");
  timeval tv{};
  tv.tv_sec = kPatience.count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("connect() failed");
  }
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  // No shutdown(SHUT_WR): httplib 0.11.4 then sent no response at all. Send
  // "Connection: close" to be answered at once; otherwise the server closes only after
  // its keep-alive timeout.
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace webexec_test
