// The redis Worker (src/redis/worker.hpp) with the Submitter against a throwaway
// redis-server: submitted jobs run and resolve; only registered names run (an
// unknown name or a malformed payload fails the job with a clear error); a stop
// request from the submitter reaches the job's stop token; stop() finishes a job
// within its deadline or releases it for immediate redelivery; and a worker process
// killed with kill -9 mid-job (issue fault test 1) loses nothing. Counting tests
// print lost / duplicated / wrong.
#include "redis/worker.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/job_registry.hpp"

#include "process/wire.hpp"
#include "redis/connection.hpp"
#include "redis/inbox.hpp"
#include "redis/payload.hpp"
#include "redis/protocol.hpp"
#include "redis/redis_server.hpp"
#include "redis/submitter.hpp"
#include "redis/url.hpp"

extern char** environ;

namespace {

using webexec::redis::Completion;
using webexec::redis::Connection;
using webexec::redis::JobEnd;
using webexec::redis::Submitter;
using webexec::redis::SubmitterOptions;
using webexec::redis::Worker;
using webexec::redis::WorkerOptions;
using webexec_test::redis::Inbox;
using webexec_test::redis::RedisServer;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Kind = webexec::process::detail::Kind;

constexpr std::size_t kMax = std::size_t{1} << 20U;

webexec::redis::RedisUrl url_of(const RedisServer& server) {
  return webexec::redis::parse_redis_url("EXECUTOR_REDIS_URL", server.url());
}

std::string payload(const std::string& job, nlohmann::json args) {
  return webexec::redis::encode_job_payload({{"job", job},
                                             {"args", std::move(args)},
                                             {"ctx", {{"app", nullptr}, {"request", nullptr}}},
                                             {"label", ""},
                                             {"progress", false}},
                                            kMax);
}

/// The result JSON of a succeeded completion, or the error message of a failed one.
nlohmann::json value_of(const Completion& c) {
  const auto m = webexec::redis::decode_outcome(c.result, kMax);
  if (m.kind == Kind::result) return m.result;
  return {{"type", m.error_type}, {"message", m.error_message}};
}

/// Polls `fn` (state in Redis, written by another thread or process) until true or 10 s.
template <typename Fn>
bool eventually(Fn&& fn) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

SubmitterOptions submitter_options() {
  SubmitterOptions o;
  o.queue = "w";
  o.block = 200ms;
  return o;
}

WorkerOptions worker_options(const webexec::JobRegistry& registry) {
  WorkerOptions o;
  o.queue = "w";
  o.registry = &registry;
  o.threads = 2;
  o.visibility_timeout = 30s;  // nothing here may depend on the reaper
  o.heartbeat = 100ms;
  o.block = 100ms;
  return o;
}

/// A gate the test opens; jobs wait on it with a bound.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
};

class RedisWorkerTest : public ::testing::Test {
 protected:
  RedisWorkerTest() : submitter_(url_of(server_), submitter_options()), conn_(url_of(server_)) {
    registry_.add("add", [](int a, int b) { return a + b; });
    registry_.add("whoami", [] {
      return webexec::redis::current_job_id() + "#" +
             std::to_string(webexec::redis::current_job_attempt());
    });
    registry_.add("sleep_ms", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    });
    registry_.add("throws", []() -> int { throw std::runtime_error("boom \0 bytes"); });
    registry_.add("until_stopped", [] {
      const auto token = webexec::redis::current_job_stop_token();
      const auto deadline = Clock::now() + 20s;
      while (!token.stop_requested() && Clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);  // a job polling its token, as user code would
      }
      return std::string(token.stop_requested() ? "stopped" : "never stopped");
    });
    registry_.add("held_on_first_attempt", [this] {
      if (webexec::redis::current_job_attempt() == 1) {
        static_cast<void>(gate_.opened.wait_for(20s));
      }
      return "attempt " + std::to_string(webexec::redis::current_job_attempt());
    });
  }

  std::string state_of(const std::string& id) {
    return conn_.call({"HGET", "webexec:{w}:job:" + id, "state"}).str;
  }
  std::string submit(const std::string& job, nlohmann::json args) {
    const std::string id = submitter_.new_job_id();
    EXPECT_TRUE(submitter_.submit(id, payload(job, std::move(args)), inbox_.callback()));
    return id;
  }

  RedisServer server_;
  Submitter submitter_;
  Connection conn_;
  Inbox inbox_;
  webexec::JobRegistry registry_;
  Gate gate_;
};

TEST_F(RedisWorkerTest, SubmittedJobsRunAndResolve) {
  Worker worker(url_of(server_), worker_options(registry_));
  constexpr int kJobs = 100;
  std::map<std::string, int> expected;
  for (int i = 0; i < kJobs; ++i) expected[submit("add", {i, 1000})] = i + 1000;
  const std::string who = submit("whoami", nlohmann::json::array());
  ASSERT_TRUE(inbox_.wait_for(kJobs + 1));
  int lost = 0;
  int duplicated = 0;
  int wrong = 0;
  auto got = inbox_.snapshot();
  for (const auto& [id, value] : expected) {
    if (got[id].empty()) {
      ++lost;
      continue;
    }
    duplicated += static_cast<int>(got[id].size()) - 1;
    if (got[id][0].end != JobEnd::succeeded || value_of(got[id][0]) != value) ++wrong;
  }
  std::cout << "[redis-worker] SubmittedJobsRunAndResolve: lost=" << lost
            << " duplicated=" << duplicated << " wrong=" << wrong << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(wrong, 0);
  // The job sees its own id and attempt.
  EXPECT_EQ(value_of(got[who].at(0)), who + "#1");
  EXPECT_TRUE(worker.stop(Clock::now() + 5s));
  EXPECT_EQ(worker.stats().succeeded, static_cast<std::uint64_t>(kJobs + 1));
}

TEST_F(RedisWorkerTest, OnlyRegisteredJobsRunAnUnknownNameFailsClearly) {
  Worker worker(url_of(server_), worker_options(registry_));
  const std::string unknown = submit("rm_rf", {"/"});
  const std::string raises = submit("throws", nlohmann::json::array());
  const std::string bad_args = submit("add", {"x", 1});
  const std::string garbage = submitter_.new_job_id();
  ASSERT_TRUE(submitter_.submit(garbage, "not a frame at all", inbox_.callback()));
  ASSERT_TRUE(inbox_.wait_for(4));
  auto got = inbox_.snapshot();
  const auto message = [&](const std::string& id) {
    EXPECT_EQ(got[id].at(0).end, JobEnd::failed) << id;
    return value_of(got[id].at(0)).at("message").get<std::string>();
  };
  EXPECT_NE(message(unknown).find("job 'rm_rf' is not registered in redis worker"),
            std::string::npos)
      << message(unknown);
  EXPECT_NE(message(raises).find("boom"), std::string::npos);
  EXPECT_EQ(value_of(got[raises].at(0)).at("type"), "std::runtime_error");
  EXPECT_NE(message(bad_args).find("argument 1 of job 'add'"), std::string::npos)
      << message(bad_args);
  EXPECT_NE(message(garbage).find("redis job payload"), std::string::npos) << message(garbage);
  // The callbacks may run before the worker counts its FINISH: stop it first.
  EXPECT_TRUE(worker.stop(Clock::now() + 5s));
  EXPECT_EQ(worker.stats().failed, 4U);
}

// A result is bounded by the worker's own EXECUTOR_MAX_PAYLOAD too, not only by
// the limit the submitter wrote into the payload (review R3).
TEST_F(RedisWorkerTest, AResultOverTheWorkersOwnLimitFailsTheJob) {
  registry_.add("big", [](int n) { return std::string(static_cast<std::size_t>(n), 'x'); });
  WorkerOptions options = worker_options(registry_);
  options.max_payload = 4096;  // the submitter's payload says 1 MiB
  Worker worker(url_of(server_), options);
  const std::string big = submit("big", {100000});
  const std::string small = submit("big", {10});
  ASSERT_TRUE(inbox_.wait_for(2));
  auto got = inbox_.snapshot();
  ASSERT_EQ(got[big].at(0).end, JobEnd::failed);
  const std::string message = value_of(got[big].at(0)).at("message").get<std::string>();
  EXPECT_NE(message.find("over EXECUTOR_MAX_PAYLOAD = 4096 bytes"), std::string::npos) << message;
  EXPECT_EQ(got[small].at(0).end, JobEnd::succeeded);
  EXPECT_TRUE(worker.stop(Clock::now() + 5s));
}

TEST_F(RedisWorkerTest, StopRequestFromTheSubmitterReachesTheJobsStopToken) {
  Worker worker(url_of(server_), worker_options(registry_));
  const std::string id = submit("until_stopped", nlohmann::json::array());
  ASSERT_TRUE(eventually([&] { return state_of(id) == "running"; }));
  EXPECT_TRUE(submitter_.request_stop(id));
  ASSERT_TRUE(inbox_.wait_for(1, 10s));
  const auto got = inbox_.snapshot();
  EXPECT_EQ(got.at(id).at(0).end, JobEnd::succeeded);
  EXPECT_EQ(value_of(got.at(id).at(0)), "stopped");
  EXPECT_TRUE(worker.stop(Clock::now() + 5s));  // joins the heartbeat: counters are final
  EXPECT_GE(worker.stats().stop_requests, 1U);
}

TEST_F(RedisWorkerTest, StopMidJobFinishesItWithinTheDeadline) {
  Worker worker(url_of(server_), worker_options(registry_));
  const std::string id = submit("sleep_ms", {300});
  ASSERT_TRUE(eventually([&] { return state_of(id) == "running"; }));
  const auto t0 = Clock::now();
  EXPECT_TRUE(worker.stop(t0 + 10s));
  EXPECT_LT(Clock::now() - t0, 5s);
  ASSERT_TRUE(inbox_.wait_for(1));
  EXPECT_EQ(inbox_.snapshot().at(id).at(0).end, JobEnd::succeeded);
  EXPECT_EQ(worker.stats().released, 0U);
}

TEST_F(RedisWorkerTest, StopPastTheDeadlineReleasesTheJobForImmediateRedelivery) {
  auto first = std::make_unique<Worker>(url_of(server_), worker_options(registry_));
  const std::string id = submit("held_on_first_attempt", nlohmann::json::array());
  ASSERT_TRUE(eventually([&] { return state_of(id) == "running"; }));
  const auto t0 = Clock::now();
  EXPECT_FALSE(first->stop(t0 + 200ms));  // the job is still held
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(first->stats().released, 1U);
  EXPECT_EQ(state_of(id), "pending");  // handed back, not waiting for the 30 s lease
  Worker second(url_of(server_), worker_options(registry_));
  ASSERT_TRUE(inbox_.wait_for(1, 10s));  // well before the visibility timeout
  EXPECT_LT(Clock::now() - t0, 10s);
  gate_.open.set_value();
  first.reset();  // its held job returns now: its result is not written
  const auto got = inbox_.snapshot();
  ASSERT_EQ(got.at(id).size(), 1U);
  EXPECT_EQ(got.at(id).at(0).end, JobEnd::succeeded);
  EXPECT_EQ(value_of(got.at(id).at(0)), "attempt 2");
  EXPECT_EQ(conn_.call({"HGET", "webexec:{w}:job:" + id, "attempt"}).str, "2");
}

// A redis-server restarted without persistence loses the library and the group; a
// running worker reloads and recreates them, and jobs submitted afterwards run.
TEST_F(RedisWorkerTest, WorkerSurvivesAServerRestartThatLostEverything) {
  Worker worker(url_of(server_), worker_options(registry_));
  const std::string before = submit("add", {1, 2});
  ASSERT_TRUE(inbox_.wait_for(1));
  server_.kill9();
  server_.restart();
  // The server has no persistence, so it came back without the library. Load nothing
  // by hand: the worker must do it (the submitter would too, but only on submit, and
  // nothing is submitted before the library is back).
  Connection fresh(url_of(server_));
  ASSERT_TRUE(eventually([&] {
    return !fresh.call({"FUNCTION", "LIST", "LIBRARYNAME", "webexec_v1"}).elements.empty();
  }));
  const std::string after = submit("add", {2, 3});
  ASSERT_TRUE(inbox_.wait_for(2));
  EXPECT_EQ(value_of(inbox_.snapshot().at(after).at(0)), 5);
  static_cast<void>(before);
}

TEST(RedisWorkerOptionsTest, HeartbeatMustBeBelowTheVisibilityTimeout) {
  RedisServer server;
  webexec::JobRegistry registry;
  WorkerOptions o = worker_options(registry);
  o.heartbeat = o.visibility_timeout;
  try {
    Worker w(url_of(server), o);
    ADD_FAILURE() << "accepted a heartbeat equal to the visibility timeout";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("must be less than visibility_timeout"), std::string::npos)
        << e.what();
  }
  o = worker_options(registry);
  o.threads = 0;
  EXPECT_THROW(Worker(url_of(server), o), std::invalid_argument);
}

/// A redis_test_worker process (posix_spawn: fork+exec, never a fork of this
/// threaded test).
class WorkerProcess {
 public:
  WorkerProcess(const RedisServer& server, const std::string& log, int threads, int visibility_ms,
                int heartbeat_ms, int grace_ms) {
    std::vector<std::string> args = {WEBEXEC_REDIS_TEST_WORKER,
                                     server.url(),
                                     "w",
                                     std::to_string(threads),
                                     std::to_string(visibility_ms),
                                     std::to_string(heartbeat_ms),
                                     log,
                                     std::to_string(grace_ms)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot spawn " + args[0]);
    }
  }
  ~WorkerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;
  void signal(int sig) { ::kill(pid_, sig); }
  /// True once the process has exited (reaped).
  bool exited() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
    return pid_ <= 0;
  }
  /// The exit status (or -signal).
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

/// (job id, attempt) per line of the helper's execution log.
std::vector<std::pair<std::string, int>> executions(const std::filesystem::path& log) {
  std::vector<std::pair<std::string, int>> out;
  std::ifstream in(log);
  std::string id;
  int attempt = 0;
  while (in >> id >> attempt) out.emplace_back(id, attempt);
  return out;
}

// Issue fault test 1: kill -9 of a worker mid-job.
TEST_F(RedisWorkerTest, WorkerKilledMidJobItsJobsAreRedeliveredNothingLost) {
  const auto log = server_.dir() / "executions.log";
  constexpr int kThreads = 2;
  constexpr int kJobs = 40;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    const std::string id = submitter_.new_job_id();
    ASSERT_TRUE(
        submitter_.submit(id, payload("slow", {std::to_string(i), 150}), inbox_.callback()));
    ids.push_back(id);
  }
  auto victim = std::make_unique<WorkerProcess>(server_, log.string(), kThreads, 1000, 200, 0);
  WorkerProcess survivor(server_, log.string(), kThreads, 1000, 200, 0);
  // Once the victim is surely mid-job (some jobs started), kill it.
  ASSERT_TRUE(eventually([&] { return executions(log).size() >= 8; }));
  victim->signal(SIGKILL);
  EXPECT_EQ(victim->wait(), -SIGKILL);
  ASSERT_TRUE(inbox_.wait_for(kJobs, 60s));
  auto got = inbox_.snapshot();
  int lost = 0;
  int wrong = 0;
  for (int i = 0; i < kJobs; ++i) {
    const auto& done = got[ids[static_cast<std::size_t>(i)]];
    if (done.empty()) {
      ++lost;
      continue;
    }
    if (done.size() != 1 || done[0].end != JobEnd::succeeded ||
        value_of(done[0]) != "r:" + std::to_string(i)) {
      ++wrong;
    }
  }
  const auto runs = executions(log);
  std::set<std::string> distinct;
  int redelivered = 0;
  for (const auto& [id, attempt] : runs) {
    distinct.insert(id);
    if (attempt > 1) ++redelivered;
  }
  const int duplicated = static_cast<int>(runs.size() - distinct.size());
  std::cout << "[redis-worker] WorkerKilledMidJob: lost=" << lost << " duplicated=" << duplicated
            << " wrong=" << wrong << " (redelivered=" << redelivered << ")" << std::endl;
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(wrong, 0);
  EXPECT_LE(duplicated, kThreads);  // at most the victim's jobs in flight
  EXPECT_GE(redelivered, 1);        // the victim did die mid-job
}

// Issue fault test 5 (the worker's half): SIGTERM mid-job, a short grace period: the
// helper releases its job, which another worker runs at once.
TEST_F(RedisWorkerTest, WorkerProcessTerminatedMidJobReleasesItsJob) {
  const auto log = server_.dir() / "executions.log";
  const std::string id = submitter_.new_job_id();
  ASSERT_TRUE(submitter_.submit(id, payload("slow", {"x", 3000}), inbox_.callback()));
  // Visibility 30 s: only a release can hand the job over in time.
  WorkerProcess first(server_, log.string(), 1, 30000, 1000, 100);
  ASSERT_TRUE(eventually([&] { return executions(log).size() == 1; }));
  const auto t0 = Clock::now();
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(), 1);  // "not every job finished": it released one
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(state_of(id), "pending");
  WorkerProcess second(server_, log.string(), 1, 30000, 1000, 100);
  ASSERT_TRUE(inbox_.wait_for(1, 15s));
  const auto got = inbox_.snapshot();
  EXPECT_EQ(got.at(id).at(0).end, JobEnd::succeeded);
  EXPECT_EQ(value_of(got.at(id).at(0)), "r:x");
  const auto runs = executions(log);
  ASSERT_EQ(runs.size(), 2U);
  EXPECT_EQ(runs[1].second, 2);
}

// Issue fault test 4: a poison job that kills every worker it touches is dead-lettered
// after max retries (max attempts 4 by default) and its future fails clearly; a good
// job submitted beside it is not lost.
TEST_F(RedisWorkerTest, PoisonJobThatKillsEveryWorkerIsDeadLettered) {
  const auto log = server_.dir() / "executions.log";
  const std::string poison = submitter_.new_job_id();
  ASSERT_TRUE(
      submitter_.submit(poison, payload("poison", nlohmann::json::array()), inbox_.callback()));
  const std::string good = submitter_.new_job_id();
  ASSERT_TRUE(submitter_.submit(good, payload("slow", {"g", 1}), inbox_.callback()));
  // One worker process at a time; each one the poison kills is replaced.
  int spawned = 0;
  const auto deadline = Clock::now() + 60s;
  while (inbox_.total() < 2 && Clock::now() < deadline && spawned < 10) {
    WorkerProcess w(server_, log.string(), 1, 500, 100, 0);
    ++spawned;
    while (!w.exited() && inbox_.total() < 2 && Clock::now() < deadline) {
      static_cast<void>(inbox_.wait_for(2, 1s));  // a worker process, or both ends
    }
  }
  ASSERT_TRUE(inbox_.wait_for(2, 1s));
  const auto got = inbox_.snapshot();
  const Completion& dead = got.at(poison).at(0);
  EXPECT_EQ(dead.end, JobEnd::dead);
  EXPECT_NE(dead.result.find("dead-lettered after 4 attempts"), std::string::npos) << dead.result;
  EXPECT_EQ(got.at(good).at(0).end, JobEnd::succeeded);
  int poison_runs = 0;
  for (const auto& [id, attempt] : executions(log)) poison_runs += id == poison ? 1 : 0;
  const int lost = got.count(good) == 0 ? 1 : 0;
  std::cout << "[redis-worker] PoisonJob: lost=" << lost
            << " duplicated=0 wrong=" << (dead.end == JobEnd::dead ? 0 : 1)
            << " (poison runs=" << poison_runs << ", workers spawned=" << spawned << ")"
            << std::endl;
  EXPECT_EQ(poison_runs, 4);
  EXPECT_EQ(conn_.call({"ZSCORE", "webexec:{w}:dead", poison}).type,
            webexec::redis::Reply::Type::string);
}

// Issue fault test 3: a worker SIGSTOPped past its lease, then SIGCONTed: the job was
// redelivered to another worker, and the revived worker's late finish is fenced off.
TEST_F(RedisWorkerTest, WorkerFrozenPastItsLeaseHasItsLateFinishFencedOff) {
  const auto log = server_.dir() / "executions.log";
  const std::string id = submitter_.new_job_id();
  ASSERT_TRUE(submitter_.submit(id, payload("tagged", {800}), inbox_.callback()));
  WorkerProcess frozen(server_, log.string(), 1, 500, 100, 10000);
  ASSERT_TRUE(eventually([&] { return executions(log).size() == 1; }));
  frozen.signal(SIGSTOP);
  WorkerProcess other(server_, log.string(), 1, 500, 100, 0);
  ASSERT_TRUE(inbox_.wait_for(1, 20s));  // reaped after 500 ms idle, run again, finished
  frozen.signal(SIGCONT);
  // Let the revived worker finish its run (its FINISH is refused) and exit cleanly.
  frozen.signal(SIGTERM);
  EXPECT_EQ(frozen.wait(), 0);  // its job ended before the 10 s grace: not released
  const auto got = inbox_.snapshot();
  const int duplicated = static_cast<int>(got.at(id).size()) - 1;
  const std::string result = value_of(got.at(id).at(0)).get<std::string>();
  const std::string kept = conn_.call({"HGET", "webexec:{w}:job:" + id, "result"}).str;
  const int wrong =
      (result != "attempt 2" || webexec::redis::decode_outcome(kept, kMax).result != "attempt 2")
          ? 1
          : 0;
  std::cout << "[redis-worker] WorkerFrozenPastItsLease: lost=0 duplicated=" << duplicated
            << " wrong=" << wrong << " (runs=" << executions(log).size() << ")" << std::endl;
  EXPECT_EQ(duplicated, 0);  // one completion: the late finish wrote nothing
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(executions(log).size(), 2U);
}

}  // namespace
