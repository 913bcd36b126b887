// The Submitter (src/redis/submitter.hpp) against a throwaway redis-server: jobs
// finished, failed, cancelled and dead-lettered by a hand-driven worker reach their
// callbacks; killing the listener's connection mid-stream (issue fault test 11) and
// killing redis-server and restarting it from its AOF lose no completion; Redis down
// at submit is a clear error with no phantom job; shutdown is bounded. Counting tests
// print lost / duplicated / wrong.
#include "redis/submitter.hpp"

#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "webexec/errors.hpp"

#include "redis/connection.hpp"
#include "redis/inbox.hpp"
#include "redis/protocol.hpp"
#include "redis/redis_server.hpp"
#include "redis/url.hpp"

namespace {

using webexec::redis::Completion;
using webexec::redis::Connection;
using webexec::redis::JobEnd;
using webexec::redis::JobQueue;
using webexec::redis::parse_redis_url;
using webexec::redis::Submitter;
using webexec::redis::SubmitterOptions;
using webexec_test::redis::Inbox;
using webexec_test::redis::RedisServer;
using webexec_test::redis::RedisServerOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Outcome = JobQueue::Outcome;

webexec::redis::RedisUrl url_of(const RedisServer& server) {
  return parse_redis_url("EXECUTOR_REDIS_URL", server.url());
}

struct Counts {
  int lost = 0;
  int duplicated = 0;
  int wrong = 0;
};

/// Jobs `ids` should each have ended once as succeeded with result "r:<id>".
Counts count(Inbox& inbox, const std::vector<std::string>& ids, const char* test) {
  Counts c;
  auto got = inbox.snapshot();
  for (const auto& id : ids) {
    const auto it = got.find(id);
    if (it == got.end()) {
      ++c.lost;
      continue;
    }
    c.duplicated += static_cast<int>(it->second.size()) - 1;
    for (const auto& done : it->second) {
      if (done.end != JobEnd::succeeded || done.result != "r:" + id) ++c.wrong;
    }
  }
  std::cout << "[redis-submitter] " << test << ": lost=" << c.lost << " duplicated=" << c.duplicated
            << " wrong=" << c.wrong << std::endl;
  return c;
}

/// Claims and finishes up to `n` jobs with result "r:<id>"; returns how many.
int finish_some(JobQueue& q, int n) {
  int done = 0;
  while (done < n) {
    auto c = q.claim("hand");
    if (!c) break;
    if (!q.finish(*c, Outcome::succeeded, "r:" + c->job_id)) ADD_FAILURE() << "fenced";
    ++done;
  }
  return done;
}

SubmitterOptions fast_options() {
  SubmitterOptions o;
  o.queue = "t";
  o.block = 200ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.connect.command_timeout = 2000ms;
  return o;
}

TEST(RedisSubmitterTest, EveryEndReachesItsCallback) {
  RedisServer server;
  auto options = fast_options();
  options.queue_options.max_attempts = 1;
  options.queue_options.reply_inline_max = 4;  // "big" results are read from the hash
  Submitter s(url_of(server), options);
  Connection conn(url_of(server));
  JobQueue q(conn, "t", options.queue_options);
  Inbox inbox;
  const std::string ok = s.new_job_id();
  const std::string bad = s.new_job_id();
  const std::string gone = s.new_job_id();
  const std::string poison = s.new_job_id();
  EXPECT_TRUE(s.submit(ok, "p1", inbox.callback()));
  EXPECT_TRUE(s.submit(bad, "p2", inbox.callback()));
  EXPECT_TRUE(s.submit(gone, "p3", inbox.callback()));
  EXPECT_TRUE(s.submit(poison, "p4", inbox.callback()));
  EXPECT_EQ(s.outstanding(), 4U);
  EXPECT_TRUE(s.cancel(gone));
  auto c1 = q.claim("hand");
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->payload, "p1");
  EXPECT_TRUE(q.finish(*c1, Outcome::succeeded, std::string("\0ok", 3)));
  auto c2 = q.claim("hand");
  ASSERT_TRUE(c2);
  EXPECT_TRUE(q.finish(*c2, Outcome::failed, "a long error message"));
  ASSERT_TRUE(q.claim("hand"));  // poison: its worker dies
  EXPECT_EQ(q.reap("reaper", 0ms).dead, 1);
  ASSERT_TRUE(inbox.wait_for(4));
  auto got = inbox.snapshot();
  ASSERT_EQ(got.size(), 4U);
  EXPECT_EQ(got[ok].at(0).end, JobEnd::succeeded);
  EXPECT_EQ(got[ok].at(0).result, std::string("\0ok", 3));
  EXPECT_EQ(got[bad].at(0).end, JobEnd::failed);
  EXPECT_EQ(got[bad].at(0).result, "a long error message");
  EXPECT_EQ(got[gone].at(0).end, JobEnd::cancelled);
  EXPECT_EQ(got[poison].at(0).end, JobEnd::dead);
  EXPECT_NE(got[poison].at(0).result.find("after 1 attempts"), std::string::npos);
  EXPECT_EQ(s.outstanding(), 0U);
  // A retried submit of an existing id is not a second job.
  EXPECT_FALSE(s.submit(ok, "again", inbox.callback()));
}

// Issue fault test 11: killing the completion listener's connection loses nothing.
TEST(RedisSubmitterTest, KillingTheListenersConnectionEveryJobStillResolves) {
  RedisServer server;
  Submitter s(url_of(server), fast_options());
  Connection conn(url_of(server));
  JobQueue q(conn, "t");
  Inbox inbox;
  constexpr int kJobs = 300;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(s.new_job_id());
    ASSERT_TRUE(s.submit(ids.back(), "p", inbox.callback()));
  }
  int finished = 0;
  for (int round = 0; finished < kJobs; ++round) {
    finished += finish_some(q, 30);
    // Kills every normal client but this one: the listener (mid-stream) and the
    // submitter's command connection.
    conn.call({"CLIENT", "KILL", "TYPE", "normal"});
    if (round == 3) {
      // And once, the reply stream itself is lost: only reconciling the job
      // hashes after the reconnect can resolve what it held.
      conn.call({"DEL", q.reply_key(s.id())});
    }
  }
  EXPECT_TRUE(inbox.wait_for(kJobs));
  const Counts c = count(inbox, ids, "KillingTheListenersConnection");
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.duplicated, 0);
  EXPECT_EQ(c.wrong, 0);
  EXPECT_GE(s.reconnects(), 1U);
  EXPECT_GE(s.reconciles(), 2U);  // the first connect, then after each reconnect
  EXPECT_EQ(s.outstanding(), 0U);
  // The command connection was killed too: submit reconnects by itself.
  EXPECT_TRUE(s.submit(s.new_job_id(), "p", inbox.callback()));
}

TEST(RedisSubmitterTest, RedisKilledAndRestartedFromItsAofEveryJobResolves) {
  RedisServer server({.appendonly = true, .appendfsync = "always"});
  Submitter s(url_of(server), fast_options());
  Inbox inbox;
  constexpr int kJobs = 100;
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(s.new_job_id());
    ASSERT_TRUE(s.submit(ids.back(), "p", inbox.callback()));
  }
  {
    Connection conn(url_of(server));
    JobQueue q(conn, "t");
    EXPECT_EQ(finish_some(q, kJobs / 2), kJobs / 2);
  }
  server.kill9();
  server.restart();
  {
    Connection conn(url_of(server));
    JobQueue q(conn, "t");
    EXPECT_EQ(finish_some(q, kJobs), kJobs / 2);
  }
  EXPECT_TRUE(inbox.wait_for(kJobs));
  const Counts c = count(inbox, ids, "RedisKilledAndRestartedFromItsAof");
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.duplicated, 0);
  EXPECT_EQ(c.wrong, 0);
}

// Issue fault test 10: Redis down at submit.
TEST(RedisSubmitterTest, RedisDownAtSubmitIsAClearErrorAndNoPhantomJob) {
  RedisServer server;
  auto s = std::make_unique<Submitter>(url_of(server), fast_options());
  Inbox inbox;
  server.stop();
  const std::string id = s->new_job_id();
  try {
    static_cast<void>(s->submit(id, "p", inbox.callback()));
    ADD_FAILURE() << "submit with Redis down did not throw";
  } catch (const webexec::redis::ConnectionError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos) << what;
    EXPECT_NE(what.find("cannot connect"), std::string::npos) << what;
  }
  EXPECT_EQ(s->outstanding(), 0U);
  server.restart();
  Connection conn(url_of(server));
  JobQueue q(conn, "t");
  EXPECT_EQ(conn.call({"EXISTS", q.job_key(id)}).integer, 0);
  EXPECT_EQ(conn.call({"DBSIZE"}).integer, 0);  // (no persistence: and nothing written)
  s.reset();
  EXPECT_EQ(inbox.total(), 0U);
  // And a submitter cannot be made while Redis is down.
  server.stop();
  EXPECT_THROW(Submitter(url_of(server), fast_options()), webexec::redis::ConnectionError);
}

TEST(RedisSubmitterTest, ShutdownIsBoundedEvenWithTheServerFrozen) {
  RedisServer server;
  auto options = fast_options();
  options.connect.command_timeout = 500ms;
  {
    Submitter s(url_of(server), options);
    const auto t0 = Clock::now();
    s.shutdown();
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_THROW(s.submit("x", "p", {}), webexec::ShutdownError);
  }
  Submitter s(url_of(server), options);
  Inbox inbox;
  ASSERT_TRUE(s.submit(s.new_job_id(), "p", inbox.callback()));
  server.pause();
  const auto t0 = Clock::now();
  s.shutdown();  // the listener is blocked on a server that does not answer
  EXPECT_LT(Clock::now() - t0, 3s);
  server.resume();
  EXPECT_EQ(inbox.total(), 0U);  // dropped, never run
}

TEST(RedisSubmitterTest, AnOversizedPayloadIsRefusedBeforeAnythingIsSent) {
  RedisServer server;
  auto options = fast_options();
  options.max_payload = 10;
  Submitter s(url_of(server), options);
  EXPECT_THROW(s.submit(s.new_job_id(), std::string(11, 'x'), {}), webexec::PayloadTooLargeError);
  EXPECT_EQ(s.outstanding(), 0U);
  Connection conn(url_of(server));
  EXPECT_EQ(conn.call({"EXISTS", "webexec:{t}:stream"}).integer, 0);
}

}  // namespace
