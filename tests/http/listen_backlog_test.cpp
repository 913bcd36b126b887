// set_listen_backlog: cpp-httplib 0.11.4 listens with a backlog of 5, so a
// burst of connections loses some; webexec raises it on the bound socket.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>

#include "webexec/http/httplib_adapter.hpp"

namespace {

/// Starts `n` non-blocking connects to 127.0.0.1:`port` at once and counts
/// those established within `limit`, while nothing accepts them.
int connects_completed(int port, int n, std::chrono::milliseconds limit) {
  std::vector<int> fds;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    static_cast<void>(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));  // NOLINT
    fds.push_back(fd);
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int done = 0;
  std::vector<bool> counted(fds.size(), false);
  while (done < n && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> pfds;
    for (const int fd : fds) pfds.push_back({fd, POLLOUT, 0});
    ::poll(pfds.data(), pfds.size(), 50);
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      int error = 0;
      socklen_t len = sizeof error;
      if (!counted[i] && (pfds[i].revents & POLLOUT) != 0 &&
          ::getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0) {
        counted[i] = true;
        ++done;
      }
    }
  }
  for (const int fd : fds) ::close(fd);
  return done;
}

TEST(ListenBacklogTest, BurstOfConnectionsIsQueuedOnceTheBacklogIsRaised) {
  httplib::Server server;
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ASSERT_TRUE(webexec::http::set_listen_backlog(port, 256));
  // Nothing accepts yet: every connection must wait in the backlog.
  EXPECT_EQ(connects_completed(port, 64, std::chrono::milliseconds(2000)), 64);
}

TEST(ListenBacklogTest, ReportsWhenNoSocketListensOnThePort) {
  httplib::Server server;
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  EXPECT_FALSE(webexec::http::set_listen_backlog(port == 65535 ? 1 : port + 1));
}

}  // namespace
