/// A throwaway `redis-server` for one test: its own process on 127.0.0.1, a free
/// random port, its own temporary directory, never the system service.
///
/// - `start()` (the constructor calls it) waits until the server answers PING,
///   with bounded retries on connect, and throws if it does not come up (the
///   message quotes the server's log).
/// - `stop()` ends it with SIGTERM (a clean shutdown, AOF flushed), `kill9()`
///   with SIGKILL; `restart()` starts it again on the same port and directory,
///   so a test can check what survives in the AOF.
/// - The destructor kills it and removes the directory. The child also gets
///   `PR_SET_PDEATHSIG`, so a test process that crashes or is killed by the
///   ctest timeout takes its server with it. Start servers from the test's
///   main thread: the death signal follows the thread that forked.
///
/// Thread safety: one thread drives a RedisServer; the accessors are safe to
/// read from others while it runs.
///
/// Example:
/// ```
/// webexec_test::redis::RedisServer server({.appendonly = true});
/// auto url = server.url();      // "redis://127.0.0.1:41234/0"
/// server.kill9();
/// server.restart();             // same port, same AOF
/// ```
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace webexec_test::redis {

struct RedisServerOptions {
  /// `--appendonly yes` with `--appendfsync <appendfsync>`; otherwise no
  /// persistence at all (`--save ""` always: no RDB snapshots).
  bool appendonly = false;
  std::string appendfsync = "always";
  /// `--requirepass`, if not empty.
  std::string password{};
  /// Also listen on a Unix socket in the server's directory.
  bool unix_socket = false;
  /// More `--name value` pairs, e.g. {"maxmemory-policy", "allkeys-lru"}.
  std::vector<std::string> extra_args{};
};

class RedisServer {
 public:
  /// Starts the server (see start()).
  /// Throws: `std::runtime_error` if it cannot be started or never answers.
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// Starts the server if it is not running and waits for PING. The first
  /// start picks a free port (retrying on a port race); later ones reuse it.
  void start();
  /// SIGTERM, then waits for the process (SIGKILL after 10 s).
  void stop();
  /// SIGKILL, then waits for the process: no shutdown work at all.
  void kill9();
  /// SIGSTOP / SIGCONT: the server stays connected but stops answering.
  void pause();
  void resume();
  /// stop() (or nothing if stopped), then start() on the same port and dir.
  void restart();

  [[nodiscard]] bool running() const { return pid_ > 0; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
  /// The Unix socket's path (only with `unix_socket`).
  [[nodiscard]] std::filesystem::path socket_path() const { return dir_ / "redis.sock"; }
  /// `redis://[:password@]127.0.0.1:<port>/<db>`.
  [[nodiscard]] std::string url(int db = 0) const;
  /// The last lines of the server's log, for failure messages.
  [[nodiscard]] std::string log_tail() const;

 private:
  bool spawn_and_wait();  // false: the port was taken, pick another
  void reap(int signal);

  RedisServerOptions options_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace webexec_test::redis
