// Many clients at once over real HTTP: 50 client threads x 100 requests each. Every
// request POSTs a number to a route that submit_stored()s a job under a unique key and
// answers 202; the client then polls GET /jobs/<key> until FINISHED and checks the
// result, which the task computes from its own request snapshot (body and path group).
// Every job must be accounted for.
//
// WEBEXEC_HTTP_SCALE (a fraction in (0, 1], default 1) scales the requests per client
// down for sanitizer runs; the 50 clients stay.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "webexec/app.hpp"
#include "webexec/context.hpp"
#include "webexec/executor.hpp"
#include "webexec/http/httplib_adapter.hpp"

#include "support/http_server.hpp"

namespace {

using nlohmann::json;
using webexec_test::Gate;
using webexec_test::HttpServer;
using webexec_test::kPatience;

constexpr int kClients = 50;
constexpr int kRequestsPerClient = 100;

int requests_per_client() {
  const char* scale = std::getenv("WEBEXEC_HTTP_SCALE");
  if (scale == nullptr || *scale == '\0') return kRequestsPerClient;
  const double s = std::strtod(scale, nullptr);
  if (!(s > 0.0) || s > 1.0) return kRequestsPerClient;
  return std::max(1, static_cast<int>(kRequestsPerClient * s));
}

std::string key_for(int client, int request) {
  return "c" + std::to_string(client) + "-r" + std::to_string(request);
}

std::int64_t number_for(int client, int request) {
  return static_cast<std::int64_t>(client) * 1'000'003 + request * 7 + 1;
}

/// Thread-safe list of failures (the first few are kept verbatim).
class Failures {
 public:
  void add(std::string what) {
    const std::lock_guard lock(mutex_);
    ++count_;
    if (first_.size() < 10) first_.push_back(std::move(what));
  }
  [[nodiscard]] int count() {
    const std::lock_guard lock(mutex_);
    return count_;
  }
  [[nodiscard]] std::string first() {
    const std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& f : first_) out += f + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  int count_ = 0;
  std::vector<std::string> first_;
};

TEST(HttpConcurrencyTest, FiftyClientsSubmitAndPollEveryJobAccountedFor) {
  const int per_client = requests_per_client();
  const int total = kClients * per_client;

  webexec::App app("concurrency-test");
  app.config().set("EXECUTOR_FUTURES_MAX_LENGTH", 10000);
  app.config().set("EXECUTOR_MAX_WORKERS", 4);
  std::atomic<int> submitted{0};
  std::atomic<int> tasks_run{0};
  webexec::Executor executor(app);

  // One server thread per keep-alive client (an idle keep-alive connection pins its
  // thread), plus a few spare.
  HttpServer http(kClients + 8);
  http.server().set_keep_alive_timeout(5);
  webexec::http::install(http.server(), app);
  http.server().Post(
      R"(/double/([\w-]+))", [&](const httplib::Request& req, httplib::Response& res) {
        const std::string key = req.matches[1].str();
        try {
          executor.submit_stored(key, [&tasks_run] {
            ++tasks_run;
            const webexec::RequestContext& r = webexec::current_request();
            return json{{"key", r.path_groups.at(1)}, {"doubled", 2 * std::stoll(r.body)}};
          });
        } catch (const std::exception& e) {
          res.status = 500;
          res.set_content(e.what(), "text/plain");
          return;
        }
        ++submitted;
        webexec::http::accepted(res, key, "/jobs");
      });
  webexec::http::mount_status_routes(http.server(), executor, "/jobs");
  http.start();

  Failures failures;
  std::atomic<int> finished_ok{0};
  std::atomic<long> polls{0};
  Gate go;
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int c = 0; c < kClients; ++c) {
    Gate connected;
    clients.emplace_back([&, c, go_signal = go.handle(), connected = connected.handle()] {
      auto cli = http.client();
      // Connect first, one client at a time (see below), then start together.
      auto warm = cli.Get("/jobs/none");
      connected.open();
      if (!warm || warm->status != 404) {
        return failures.add(
            "client " + std::to_string(c) + ": cannot connect: " +
            (warm ? std::to_string(warm->status) : httplib::to_string(warm.error())));
      }
      if (!go_signal.wait()) return failures.add("client " + std::to_string(c) + ": no start");
      for (int i = 0; i < per_client; ++i) {
        const std::string key = key_for(c, i);
        const std::int64_t n = number_for(c, i);
        auto res = cli.Post("/double/" + key, std::to_string(n), "text/plain");
        if (!res) return failures.add(key + ": POST failed: " + httplib::to_string(res.error()));
        if (res->status != 202 || res->get_header_value("Location") != "/jobs/" + key) {
          failures.add(key + ": POST answered " + std::to_string(res->status) + " " + res->body);
          continue;
        }
        const auto deadline = std::chrono::steady_clock::now() + kPatience;
        for (;;) {
          ++polls;
          auto st = cli.Get("/jobs/" + key);
          if (!st) return failures.add(key + ": GET failed: " + httplib::to_string(st.error()));
          if (st->status != 200) {
            failures.add(key + ": GET answered " + std::to_string(st->status) + " " + st->body);
            break;
          }
          const json body = json::parse(st->body);
          const std::string state = body.at("state");
          if (state == "FINISHED") {
            const json expected = {{"key", key}, {"doubled", 2 * n}};
            if (body.contains("result") && body.at("result") == expected) {
              ++finished_ok;
            } else {
              failures.add(key + ": wrong result " + body.dump());
            }
            break;
          }
          if (state != "PENDING" && state != "RUNNING") {
            failures.add(key + ": unexpected state " + body.dump());
            break;
          }
          if (std::chrono::steady_clock::now() > deadline) {
            failures.add(key + ": still " + state + " after the deadline");
            break;
          }
          std::this_thread::yield();
        }
      }
    });
    // httplib 0.11.4 listens with a backlog of 5: a burst of 50 connects overflows it
    // and some connections then fail. Connect one client at a time.
    if (!connected.wait()) failures.add("client " + std::to_string(c) + ": connect timed out");
  }
  go.open();
  for (auto& t : clients) t.join();

  EXPECT_EQ(failures.count(), 0) << failures.first();
  EXPECT_EQ(submitted.load(), total);
  EXPECT_EQ(finished_ok.load(), total);
  EXPECT_EQ(tasks_run.load(), total);
  EXPECT_GE(polls.load(), total);

  // The collection holds exactly the jobs sent, each with the right result.
  EXPECT_EQ(executor.futures().size(), static_cast<std::size_t>(total));
  const auto keys = executor.futures().keys();
  const std::set<std::string> stored(keys.begin(), keys.end());
  EXPECT_EQ(stored.size(), static_cast<std::size_t>(total));
  int checked = 0;
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < per_client; ++i) {
      const std::string key = key_for(c, i);
      ASSERT_TRUE(stored.count(key) == 1) << key << " missing from futures()";
      const auto result = executor.futures().result<json>(key, std::chrono::seconds(0));
      ASSERT_TRUE(result.has_value()) << key;
      EXPECT_EQ(result->at("doubled"), 2 * number_for(c, i)) << key;
      ++checked;
    }
  }
  EXPECT_EQ(checked, total);
}

}  // namespace
