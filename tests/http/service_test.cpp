// The example service (examples/service.cpp), run as a real process: the seed's own
// flow (GET /start-task, poll GET /get-result until "done" with pow(323, 1235) as a
// decimal string, then the pop), the progress-reporting /reports job through the status
// routes, and a clean exit on SIGTERM.
//
// The binary is found next to this test's build tree: <build>/tests/http_service_test
// -> <build>/examples/service. A missing binary fails the test (build target
// `service`).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>

#include "support/http_server.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX

namespace {

using nlohmann::json;
using webexec_test::kPatience;
namespace fs = std::filesystem;

constexpr std::chrono::seconds kStartup{10};

/// Python's pow(323, 1235) in decimal, computed here independently of the service:
/// schoolbook multiplication on base-10 digits (little-endian).
std::string python_pow_323_1235() {
  std::vector<int> digits{1};
  for (int i = 0; i < 1235; ++i) {
    int carry = 0;
    for (int& d : digits) {
      const int v = d * 323 + carry;
      d = v % 10;
      carry = v / 10;
    }
    for (; carry != 0; carry /= 10) digits.push_back(carry % 10);
  }
  std::string out;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it)
    out.push_back(static_cast<char>('0' + *it));
  return out;
}

fs::path service_binary() {
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "examples" / "service";
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, close).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

/// A child process; the destructor kills (SIGKILL) and reaps it if still there.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  /// Starts `argv[0]` with `argv`. Returns the posix_spawn error (0 on success).
  /// With `stderr_path`, the child's stderr goes to that file (truncated).
  int spawn(const std::vector<std::string>& argv, const std::string& stderr_path = {}) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    if (!stderr_path.empty()) {
      ::posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    return rc;
  }

  /// True if it has exited (reaps it; its status is in `status()`).
  bool exited() {
    if (reaped_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = status;
    }
    return reaped_;
  }

  /// Sends `sig` and reaps the child, waiting up to `timeout` (a blocking waitpid on
  /// a helper thread: no polling). Returns the wait status, or empty if it did not exit
  /// in time (it is then killed and reaped).
  std::optional<int> signal_and_reap(int sig, std::chrono::nanoseconds timeout) {
    if (reaped_) return status_;
    std::promise<int> exited;
    auto status = exited.get_future();
    std::thread reaper([pid = pid_, &exited] {
      int s = 0;
      while (::waitpid(pid, &s, 0) < 0 && errno == EINTR) {
      }
      exited.set_value(s);
    });
    ::kill(pid_, sig);
    std::optional<int> out;
    if (status.wait_for(timeout) == std::future_status::ready) {
      out = status.get();
    } else {
      ::kill(pid_, SIGKILL);
    }
    reaper.join();
    reaped_ = true;
    status_ = out.value_or(-1);
    return out;
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] int status() const noexcept { return status_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

class ExampleServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path binary = service_binary();
    ASSERT_TRUE(fs::exists(binary)) << binary << " is missing: build the `service` target "
                                    << "(cmake --build --preset <preset> --target service)";
    port_ = free_port();
    ASSERT_GT(port_, 0);
    stderr_path_ = ::testing::TempDir() + "webexec-service-" + std::to_string(::getpid()) + "-" +
                   std::to_string(port_) + ".log";
    ASSERT_EQ(child_.spawn({binary.string(), "--port", std::to_string(port_)}, stderr_path_), 0)
        << binary;

    // Readiness: poll GET / until it answers (bounded; the only polling with sleeps,
    // for the child's startup).
    httplib::Client probe("127.0.0.1", port_);
    probe.set_connection_timeout(std::chrono::milliseconds(200));
    probe.set_read_timeout(kPatience);
    const auto deadline = std::chrono::steady_clock::now() + kStartup;
    for (;;) {
      ASSERT_FALSE(child_.exited())
          << "the service exited during startup, status " << child_.status();
      if (auto res = probe.Get("/"); res && res->status == 200) {
        root_ = json::parse(res->body);
        break;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "the service did not answer GET / on port " << port_ << " within " << kStartup.count()
          << " s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void TearDown() override {
    if (!stderr_path_.empty()) fs::remove(stderr_path_);
    if (child_.pid() <= 0 || child_.exited()) return;
    const auto status = child_.signal_and_reap(SIGTERM, kPatience);
    ASSERT_TRUE(status.has_value()) << "the service ignored SIGTERM (killed)";
    EXPECT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }

  [[nodiscard]] httplib::Client client() const {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_keep_alive(true);
    cli.set_connection_timeout(kPatience);
    cli.set_read_timeout(kPatience);
    return cli;
  }

  Child child_;
  int port_ = -1;
  std::string stderr_path_;
  json root_;
};

TEST_F(ExampleServiceTest, RootDescribesTheService) {
  EXPECT_EQ(root_.at("service"), "webexec-example");
  EXPECT_EQ(root_.at("you").at("path"), "/");
}

TEST_F(ExampleServiceTest, SeedFlowStartTaskThenGetResultAndPop) {
  auto cli = client();

  auto before = cli.Get("/get-result");
  ASSERT_TRUE(before) << httplib::to_string(before.error());
  EXPECT_EQ(before->status, 404);
  EXPECT_TRUE(json::parse(before->body).at("status").is_null()) << before->body;

  auto start = cli.Get("/start-task");
  ASSERT_TRUE(start) << httplib::to_string(start.error());
  EXPECT_EQ(start->status, 200);
  EXPECT_EQ(json::parse(start->body), json({{"result", "success"}}));

  // The key stays stored until /get-result pops it: a second start is refused.
  auto again = cli.Get("/start-task");
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(again->status, 409) << again->body;

  json done;
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  for (;;) {
    auto res = cli.Get("/get-result");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 200) << res->body;
    const json body = json::parse(res->body);
    const std::string status = body.at("status");
    if (status == "done") {
      done = body;
      break;
    }
    ASSERT_TRUE(status == "PENDING" || status == "RUNNING") << body;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "calc_power never finished";
  }

  ASSERT_TRUE(done.at("result").is_string()) << "the result must be a decimal string";
  const std::string result = done.at("result");
  EXPECT_EQ(result.size(), 3099U);
  EXPECT_TRUE(std::all_of(result.begin(), result.end(),
                          [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }));
  EXPECT_EQ(result.substr(0, 20), "73301874197116625252");
  EXPECT_EQ(result.substr(result.size() - 20), "96527027073630500507");
  EXPECT_EQ(result, python_pow_323_1235());

  auto after = cli.Get("/get-result");
  ASSERT_TRUE(after) << httplib::to_string(after.error());
  EXPECT_EQ(after->status, 404) << "the future was popped";
  EXPECT_TRUE(json::parse(after->body).at("status").is_null());

  // Popped: the seed's flow can start again.
  auto restart = cli.Get("/start-task");
  ASSERT_TRUE(restart) << httplib::to_string(restart.error());
  EXPECT_EQ(restart->status, 200);
}

/// The text of the file at `path` (empty if missing).
std::string source_file_at(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The text of `relative` (to the source tree, found from this file's path).
std::string source_file(const std::string& relative) {
  const fs::path path = fs::path(__FILE__).parent_path().parent_path().parent_path() / relative;
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "The README's and the example's code is the code that the race test runs": the
// seed-flow routes of examples/service.cpp (between its [readme seed-flow] markers,
// one indentation level removed) appear verbatim in README.md.
TEST(ReadmeSeedFlow, QuotesTheExampleServiceVerbatim) {
  const std::string example = source_file("examples/service.cpp");
  const std::string readme = source_file("README.md");
  ASSERT_FALSE(example.empty());
  ASSERT_FALSE(readme.empty());
  const std::string begin = "// [readme seed-flow]\n";
  const std::size_t a = example.find(begin);
  const std::size_t b = example.find("// [/readme seed-flow]");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  std::istringstream lines(example.substr(a + begin.size(), b - a - begin.size()));
  std::string region;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  ", 0) == 0) line.erase(0, 2);
    if (line.find_first_not_of(' ') == std::string::npos) continue;  // the marker's indent
    region += line + "\n";
  }
  ASSERT_NE(region.find("pop_if_done"), std::string::npos) << region;
  EXPECT_NE(readme.find(region), std::string::npos)
      << "README.md must quote examples/service.cpp verbatim:\n"
      << region;
}

// Issue 9 item 10: the README's /get-result pattern under 16 concurrent pollers. Each
// client starts the seed's job and polls it for 10 s; when two pollers see it done,
// only one may pop it. The service must stay up and every answer must be a well-formed
// JSON document with 200, 404 or 409 (the old done/state/pop/result sequence
// dereferenced an empty optional and the service died with SIGSEGV).
TEST_F(ExampleServiceTest, SixteenPollersOfTheSeedFlowNeverCrashTheService) {
  constexpr int kClients = 16;
  constexpr auto kRun = std::chrono::seconds(10);
  struct Tally {
    int requests = 0;
    int done = 0;
    std::string failure;  // the first bad answer, if any
  };
  std::vector<Tally> tallies(kClients);
  std::vector<std::thread> clients;
  const auto deadline = std::chrono::steady_clock::now() + kRun;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([this, deadline, &tally = tallies[static_cast<std::size_t>(c)]] {
      auto cli = client();
      auto check = [&](const char* path, const httplib::Result& res) {
        ++tally.requests;
        if (!res) {
          tally.failure = std::string(path) + ": " + httplib::to_string(res.error());
          return false;
        }
        if (res->status != 200 && res->status != 404 && res->status != 409) {
          tally.failure = std::string(path) + ": status " + std::to_string(res->status);
          return false;
        }
        if (!json::accept(res->body)) {
          tally.failure = std::string(path) + ": not JSON: " + res->body;
          return false;
        }
        return true;
      };
      while (std::chrono::steady_clock::now() < deadline && tally.failure.empty()) {
        if (!check("/start-task", cli.Get("/start-task"))) break;
        for (int poll = 0; poll < 1000 && std::chrono::steady_clock::now() < deadline; ++poll) {
          auto res = cli.Get("/get-result");
          if (!check("/get-result", res)) break;
          if (res->status == 404) break;  // popped (by us or another poller)
          if (json::parse(res->body).at("status") == "done") {
            ++tally.done;
            break;
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();

  int requests = 0;
  int done = 0;
  for (const auto& t : tallies) {
    EXPECT_TRUE(t.failure.empty()) << t.failure;
    requests += t.requests;
    done += t.done;
  }
  ASSERT_FALSE(child_.exited()) << "the service died, wait status " << child_.status();
  auto cli = client();
  auto alive = cli.Get("/");
  ASSERT_TRUE(alive) << httplib::to_string(alive.error());
  EXPECT_EQ(alive->status, 200);
  EXPECT_GT(done, 0) << "no poller ever saw the job done in " << requests << " requests";
}

TEST_F(ExampleServiceTest, ReportsJobShowsProgressThroughTheStatusRoutes) {
  auto cli = client();
  auto accepted = cli.Get("/reports?steps=3", {{"X-Request-Id", "svc-report-1"}});
  ASSERT_TRUE(accepted) << httplib::to_string(accepted.error());
  ASSERT_EQ(accepted->status, 202) << accepted->body;
  const std::string location = accepted->get_header_value("Location");
  const std::string key = json::parse(accepted->body).at("key");
  EXPECT_EQ(location, "/jobs/" + key);
  EXPECT_EQ(accepted->get_header_value("X-Request-Id"), "svc-report-1");

  json last;
  std::int64_t last_done = -1;
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  for (;;) {
    auto res = cli.Get(location);
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 200) << res->body;
    last = json::parse(res->body);
    EXPECT_EQ(last.at("key"), key);
    const std::string state = last.at("state");
    ASSERT_TRUE(state == "PENDING" || state == "RUNNING" || state == "FINISHED") << last;
    if (last.at("progress").is_object()) {
      const std::int64_t done = last.at("progress").at("done");
      EXPECT_GE(done, last_done) << "progress never goes back";
      EXPECT_EQ(last.at("progress").at("total"), 3);
      last_done = done;
    }
    if (state == "FINISHED") break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the reports job never finished";
  }

  EXPECT_FALSE(last.contains("error")) << last;
  EXPECT_EQ(last.at("progress").at("done"), 3);
  EXPECT_DOUBLE_EQ(last.at("progress").at("fraction").get<double>(), 1.0);
  EXPECT_EQ(last.at("progress").at("message"), "done");
  EXPECT_EQ(last.at("result"), json({{"steps", 3},
                                     {"requested_by", "127.0.0.1"},
                                     {"request_id", "svc-report-1"},
                                     {"path", "/reports"}}));
}

TEST_F(ExampleServiceTest, FullCollectionRefusesNewReportsClearlyWithoutLeakingInternals) {
  // The service stores at most 1000 futures (EXECUTOR_FUTURES_MAX_LENGTH) and runs 4
  // workers; /reports?steps=1000 jobs run for 100 s, so none finishes during the test
  // and the 1001st submit_stored is refused (CapacityError).
  auto cli = client();
  for (int i = 0; i < 1000; ++i) {
    auto res = cli.Get("/reports?steps=1000");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    ASSERT_EQ(res->status, 202) << "request " << i << ": " << res->body;
  }
  auto refused = cli.Get("/reports?steps=1000");
  ASSERT_TRUE(refused) << httplib::to_string(refused.error());
  EXPECT_TRUE(refused->status == 503 || refused->status == 429)
      << "a full collection is a temporary condition (503/429), got " << refused->status;
  EXPECT_FALSE(refused->has_header("EXCEPTION_WHAT"))
      << "httplib's default 500 leaks the exception text: "
      << refused->get_header_value("EXCEPTION_WHAT");
  EXPECT_TRUE(json::accept(refused->body))
      << "expected a JSON error body, got '" << refused->body << "'";
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");

  // Issue 9 item 11: the seed's /start-task answered 500 here (CapacityError escaped).
  auto start = cli.Get("/start-task");
  ASSERT_TRUE(start) << httplib::to_string(start.error());
  EXPECT_EQ(start->status, 503) << start->body;
  EXPECT_EQ(start->get_header_value("Retry-After"), "1");
  EXPECT_TRUE(json::accept(start->body)) << start->body;
  EXPECT_EQ(start->body.find("EXECUTOR_FUTURES_MAX_LENGTH"), std::string::npos)
      << "the CapacityError's text must not reach the client: " << start->body;
}

// Issue 9 item 11: every malformed ?steps= used to answer 500 (parse_int threw into
// httplib). Each is now a 400 whose JSON body names the parameter.
TEST_F(ExampleServiceTest, MalformedStepsAre400NamingTheParameter) {
  auto cli = client();
  for (const std::string raw : {"abc", "", "0", "-1", "1001", "99999999999", "1.5", "%00", "%FF",
                                "%E2%91%A4", "+5", "%2B5", "5%20", "0x10", "1e3"}) {
    auto res = cli.Get("/reports?steps=" + raw);
    ASSERT_TRUE(res) << raw << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 400) << "steps=" << raw << ": " << res->body;
    ASSERT_TRUE(json::accept(res->body)) << "steps=" << raw << ": " << res->body;
    const json body = json::parse(res->body);
    EXPECT_EQ(body.value("parameter", ""), "steps") << body;
    EXPECT_NE(body.value("error", "").find("steps"), std::string::npos) << body;
  }
  auto ok = cli.Get("/reports?steps=1");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 202) << ok->body;
}

// Issue 9 item 11: a key that is not UTF-8 made the JSON encoder throw (500). It is now
// a 404 whose body is valid JSON, with the bad bytes replaced.
TEST_F(ExampleServiceTest, KeysThatAreNotUtf8Are404WithValidJson) {
  auto cli = client();
  for (const std::string key : {"%FF", "%C0%AF", "%ED%A0%80", "a%FFb"}) {
    for (const bool del : {false, true}) {
      auto res = del ? cli.Delete("/jobs/" + key) : cli.Get("/jobs/" + key);
      ASSERT_TRUE(res) << key << ": " << httplib::to_string(res.error());
      EXPECT_EQ(res->status, 404) << (del ? "DELETE " : "GET ") << key << ": " << res->body;
      ASSERT_TRUE(json::accept(res->body)) << key << ": " << res->body;
      EXPECT_EQ(json::parse(res->body).value("error", ""), "unknown job") << res->body;
    }
  }
}

// Issue 9 item 15: the example's log lines (access log and error reports) escape
// control characters, so a query's %0A cannot forge a line.
TEST_F(ExampleServiceTest, LogLinesEscapeControlCharacters) {
  auto cli = client();
  auto res = cli.Get("/reports?steps=abc%0Aforged%20line%0D%1B[2J");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 400);
  const auto status = child_.signal_and_reap(SIGTERM, kPatience);  // flushes every line
  ASSERT_TRUE(status.has_value());
  const std::string log = source_file_at(stderr_path_);
  ASSERT_NE(log.find("steps=abc\\nforged line\\r\\x1b[2J\" 400"), std::string::npos) << log;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.find("forged"), line.rfind("forged")) << line;
    EXPECT_NE(line.rfind("forged", 0), 0U) << "a forged line: " << line;
    for (const char c : line) {
      EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20U) << "a control character in: " << line;
    }
  }
}

// The seed's flow with unique keys (the tiny-job route the benchmark drives): each
// GET /tiny stores a job under a fresh key; polling its Location ends in "done" with
// the result, after which the key is gone.
TEST_F(ExampleServiceTest, TinyJobsGetFreshKeysAndArePoppedWhenDone) {
  auto cli = client();
  std::set<std::string> keys;
  for (int i = 0; i < 50; ++i) {
    auto accepted = cli.Get("/tiny");
    ASSERT_TRUE(accepted) << httplib::to_string(accepted.error());
    ASSERT_EQ(accepted->status, 202) << accepted->body;
    const std::string key = json::parse(accepted->body).at("key");
    EXPECT_TRUE(keys.insert(key).second) << "a repeated key " << key;
    const std::string location = accepted->get_header_value("Location");
    ASSERT_EQ(location, "/tiny/" + key);
    json done;
    for (int poll = 0; poll < 100000; ++poll) {
      auto res = cli.Get(location);
      ASSERT_TRUE(res) << httplib::to_string(res.error());
      ASSERT_EQ(res->status, 200) << res->body;
      done = json::parse(res->body);
      if (done.at("status") == "done") break;
    }
    ASSERT_EQ(done, json({{"status", "done"}, {"result", 42}}));
    auto gone = cli.Get(location);
    ASSERT_TRUE(gone) << httplib::to_string(gone.error());
    EXPECT_EQ(gone->status, 404);
  }
}

TEST_F(ExampleServiceTest, UnknownJobIs404) {
  auto cli = client();
  auto res = cli.Get("/jobs/0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 404);
  auto del = cli.Delete("/jobs/0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(del) << httplib::to_string(del.error());
  EXPECT_EQ(del->status, 404);
}

TEST_F(ExampleServiceTest, SigtermStopsTheServiceCleanly) {
  const auto status = child_.signal_and_reap(SIGTERM, kPatience);
  ASSERT_TRUE(status.has_value()) << "the service ignored SIGTERM (killed)";
  EXPECT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  // Reaped: no zombie is left behind.
  errno = 0;
  EXPECT_EQ(::waitpid(child_.pid(), nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
