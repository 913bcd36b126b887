// The job protocol (src/redis/protocol.hpp, library webexec_v1) against a real
// redis-server of our own: fencing of late finishes and of workers frozen between read
// and start, lease expiry and redelivery with a new token, the time limit of a hung
// job, dead-lettering after max attempts, backoff through the schedule, cancel, stop
// requests, and an AOF restart that keeps enqueued jobs (with a negative control).
// Tests that count jobs print their lost / duplicated / wrong counts.
#include "redis/protocol.hpp"

#include <chrono>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "redis/connection.hpp"
#include "redis/redis_server.hpp"
#include "redis/url.hpp"

namespace {

using webexec::redis::Claim;
using webexec::redis::ClaimStatus;
using webexec::redis::Connection;
using webexec::redis::JobQueue;
using webexec::redis::JobQueueOptions;
using webexec::redis::parse_redis_url;
using webexec_test::redis::RedisServer;
using webexec_test::redis::RedisServerOptions;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Outcome = JobQueue::Outcome;

Connection connect(const RedisServer& server) {
  return Connection(parse_redis_url("EXECUTOR_REDIS_URL", server.url()));
}

std::string payload_of(int i) { return std::string("job\0", 4) + std::to_string(i); }

/// Polls `fn` (a reply, not a latch: the lease is a server-side clock) until it is
/// true or 5 s pass.
template <typename Fn>
bool eventually(Fn&& fn) {
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

struct Counts {
  int lost = 0;
  int duplicated = 0;
  int wrong = 0;
};

void print(const char* test, const Counts& c) {
  std::cout << "[redis-protocol] " << test << ": lost=" << c.lost << " duplicated=" << c.duplicated
            << " wrong=" << c.wrong << std::endl;
}

class RedisProtocolTest : public ::testing::Test {
 protected:
  explicit RedisProtocolTest(RedisServerOptions options = {})
      : server_(std::move(options)), conn_(connect(server_)) {}

  JobQueue queue(JobQueueOptions options = {}) {
    JobQueue q(conn_, "test", options);
    q.load_library();
    return q;
  }
  std::string hget(const JobQueue& q, const std::string& id, const char* field) {
    return conn_.call({"HGET", q.job_key(id), field}).str;
  }

  RedisServer server_;
  Connection conn_;
};

class RedisProtocolAofTest : public RedisProtocolTest {
 protected:
  RedisProtocolAofTest() : RedisProtocolTest({.appendonly = true, .appendfsync = "always"}) {}
};

TEST_F(RedisProtocolTest, LibraryIsVersioned) {
  auto q = queue();
  const auto list = conn_.call({"FUNCTION", "LIST", "LIBRARYNAME", "webexec_v1"});
  ASSERT_EQ(list.elements.size(), 1U);
  q.load_library();  // REPLACE: loading again is harmless
  EXPECT_EQ(q.prefix(), "webexec:{test}:");
  EXPECT_THROW(JobQueue(conn_, "a{b}"), std::invalid_argument);
}

// Review: zero or negative durations reached the server (PEXPIRE 0 deletes at once,
// a zero time limit fences every job off) instead of being refused here.
TEST_F(RedisProtocolTest, OptionsOutOfRangeAreRefusedNamingFieldAndValue) {
  const auto refused = [&](const JobQueueOptions& options, const std::string& part) {
    try {
      JobQueue q(conn_, "test", options);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "accepted options that should name " << part;
  };
  refused({.time_limit = 0ms}, "time_limit must be more than 0 ms, not 0 ms");
  refused({.time_limit = -5ms}, "time_limit must be more than 0 ms, not -5 ms");
  refused({.backoff = -1ms}, "backoff must be 0 ms or more, not -1 ms");
  refused({.max_backoff = 0ms}, "max_backoff must be more than 0 ms, not 0 ms");
  refused({.result_ttl = 0ms}, "result_ttl must be more than 0 ms, not 0 ms");
  refused({.dead_ttl = -1ms}, "dead_ttl must be more than 0 ms, not -1 ms");
  refused({.dead_max = 0}, "dead_max must be more than 0, not 0");
  refused({.max_attempts = 0}, "max_attempts must be at least 1, not 0");
  EXPECT_NO_THROW(JobQueue(conn_, "test", {.backoff = 0ms}));  // 0: straight back
}

TEST_F(RedisProtocolTest, EnqueueClaimFinish) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j1", payload_of(1)));
  EXPECT_FALSE(q.enqueue("j1", "again"));  // a retried submit is not a second job
  EXPECT_EQ(hget(q, "j1", "state"), "pending");
  EXPECT_EQ(hget(q, "j1", "v"), "1");

  auto c = q.claim("w1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->job_id, "j1");
  EXPECT_EQ(c->token, 1);
  EXPECT_EQ(c->payload, payload_of(1));
  EXPECT_EQ(hget(q, "j1", "state"), "running");
  EXPECT_FALSE(q.claim("w2"));  // nothing else waits

  EXPECT_TRUE(q.finish(*c, Outcome::succeeded, std::string("r\0", 2)));
  EXPECT_EQ(hget(q, "j1", "state"), "succeeded");
  EXPECT_EQ(hget(q, "j1", "result"), std::string("r\0", 2));
  EXPECT_GT(conn_.call({"PTTL", q.job_key("j1")}).integer, 0);
  EXPECT_EQ(conn_.call({"XLEN", q.key("stream")}).integer, 0);
  EXPECT_EQ(conn_.call({"XPENDING", q.key("stream"), "workers"}).elements.at(0).integer, 0);
  // A retry by the same claim is told OK (its first reply may have been lost) and
  // changes nothing.
  EXPECT_TRUE(q.finish(*c, Outcome::succeeded, "twice"));
  EXPECT_EQ(hget(q, "j1", "result"), std::string("r\0", 2));

  // Every key lives under the queue's hash tag.
  for (const auto& k : conn_.call({"KEYS", "*"}).elements) {
    EXPECT_EQ(k.str.rfind("webexec:{test}:", 0), 0U) << k.str;
  }
}

TEST_F(RedisProtocolTest, LateFinishWithAStaleTokenIsRefused) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  // A freezes past its lease: the reaper takes the job back, B runs it.
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->token, 2);
  // A wakes up: neither its heartbeat nor its finish is accepted.
  EXPECT_FALSE(q.extend(*a));
  EXPECT_FALSE(q.finish(*a, Outcome::succeeded, "from-a"));
  EXPECT_TRUE(q.extend(*b));
  EXPECT_TRUE(q.finish(*b, Outcome::succeeded, "from-b"));
  const Counts counts{0, 0, hget(q, "j", "result") == "from-b" ? 0 : 1};
  print("LateFinishWithAStaleTokenIsRefused", counts);
  EXPECT_EQ(counts.wrong, 0);
}

TEST_F(RedisProtocolTest, LateFinishBeforeTheRedeliveryStartsIsRefused) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  EXPECT_FALSE(q.finish(*a, Outcome::succeeded, "from-a"));  // requeued, not yet started
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_TRUE(q.finish(*b, Outcome::succeeded, "from-b"));
  EXPECT_EQ(hget(q, "j", "result"), "from-b");
}

TEST_F(RedisProtocolTest, WorkerFrozenBetweenReadAndStartDoesNotRunTheJob) {
  // The review's correction 1: the draft's START accepted any RUNNING job.
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.read("worker-a");  // read, then frozen before START
  ASSERT_TRUE(a);
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(q.start(*a), ClaimStatus::stale);  // woken after the requeue: refused
  EXPECT_EQ(hget(q, "j", "attempt"), "1");
  EXPECT_TRUE(q.finish(*b, Outcome::succeeded, "b"));

  // Woken after the requeue but before anyone started the new delivery: refused too,
  // and the new delivery still runs.
  ASSERT_TRUE(q.enqueue("k", "p"));
  auto c = q.read("worker-c");
  ASSERT_TRUE(c);
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  EXPECT_EQ(q.start(*c), ClaimStatus::stale);
  auto d = q.claim("worker-d");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->token, 1);  // a delivery that never started burns no attempt
}

TEST_F(RedisProtocolTest, ExpiredLeaseIsRedeliveredWithANewToken) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "payload"));
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  const auto claimed = Clock::now();
  // A live lease is not taken: the heartbeat keeps it.
  EXPECT_EQ(q.reap("reaper", 10s).requeued, 0);
  EXPECT_TRUE(q.extend(*a));
  // A dies: no more heartbeats. After the lease the reaper requeues the job.
  EXPECT_TRUE(eventually([&] { return q.reap("reaper", 200ms).requeued == 1; }));
  EXPECT_GE(Clock::now() - claimed, 200ms);
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->token, 2);
  EXPECT_EQ(b->payload, "payload");
  EXPECT_NE(b->sid, a->sid);
  EXPECT_TRUE(q.finish(*b, Outcome::succeeded, "ok"));
}

TEST_F(RedisProtocolTest, HeartbeatKeepsTheLease) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  // Three leases long, renewed every 50 ms: never taken back.
  const auto until = Clock::now() + 1500ms;
  while (Clock::now() < until) {
    ASSERT_TRUE(q.extend(*a));
    EXPECT_EQ(q.reap("reaper", 500ms).requeued, 0);
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(q.finish(*a, Outcome::succeeded, "ok"));
}

TEST_F(RedisProtocolTest, HungJobIsBoundedByItsTimeLimit) {
  // The review's correction 3: a live heartbeat must not lease a hung job forever.
  auto q = queue({.time_limit = 200ms});
  ASSERT_TRUE(q.enqueue("j", "p"));
  // Taken before START: a slow START reply must not shorten the measured span.
  const auto started = Clock::now();
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  EXPECT_TRUE(q.extend(*a));
  EXPECT_TRUE(eventually([&] { return !q.extend(*a); }));
  EXPECT_GE(Clock::now() - started, 150ms);
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->token, 2);
}

TEST_F(RedisProtocolTest, DeadLetteredAfterMaxAttempts) {
  auto q = queue({.max_attempts = 3});
  ASSERT_TRUE(q.enqueue("poison", "p"));
  ASSERT_TRUE(q.enqueue("fine", "p"));
  int starts = 0;
  int dead = 0;
  for (int round = 0; round < 10 && dead == 0; ++round) {
    // The poison job kills every worker that starts it: claims, never finishes.
    while (auto c = q.claim("worker-" + std::to_string(round))) {
      if (c->job_id == "fine") {
        EXPECT_TRUE(q.finish(*c, Outcome::succeeded, "ok"));
      } else {
        ++starts;
        EXPECT_EQ(c->token, starts);
      }
    }
    dead += q.reap("reaper", 0ms).dead;
  }
  EXPECT_EQ(starts, 3);
  EXPECT_EQ(dead, 1);
  EXPECT_EQ(hget(q, "poison", "state"), "dead");
  EXPECT_NE(hget(q, "poison", "result").find("after 3 attempts"), std::string::npos);
  EXPECT_EQ(conn_.call({"ZSCORE", q.key("dead"), "poison"}).type,
            webexec::redis::Reply::Type::string);
  EXPECT_EQ(hget(q, "fine", "state"), "succeeded");
  EXPECT_FALSE(q.claim("worker-late"));
  const Counts counts{hget(q, "fine", "state") == "succeeded" ? 0 : 1, 0, 0};
  print("DeadLetteredAfterMaxAttempts", counts);
}

TEST_F(RedisProtocolTest, RetryWaitsInTheScheduleThenIsPromoted) {
  // The review's correction 8: delayed retries sit in a schedule zset, not in the
  // pending list where the visibility timeout would redeliver them.
  auto q = queue({.backoff = 100ms});
  ASSERT_TRUE(q.enqueue("j", "p"));
  ASSERT_TRUE(q.claim("worker-a"));
  const auto lost = Clock::now();
  EXPECT_EQ(q.reap("reaper", 0ms).scheduled, 1);
  EXPECT_EQ(hget(q, "j", "state"), "scheduled");
  EXPECT_FALSE(q.claim("worker-b"));
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 0);  // nothing pending to redeliver
  EXPECT_TRUE(eventually([&] { return q.promote_due() == 1; }));
  EXPECT_GE(Clock::now() - lost, 90ms);
  auto b = q.claim("worker-b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->token, 2);
}

TEST_F(RedisProtocolTest, CancelOnlyPendingAndStopRequestsReachTheHeartbeat) {
  auto q = queue({.backoff = 10s});
  ASSERT_TRUE(q.enqueue("pending", "p"));
  ASSERT_TRUE(q.enqueue("running", "p"));
  EXPECT_TRUE(q.cancel("pending"));
  EXPECT_FALSE(q.cancel("pending"));
  EXPECT_EQ(hget(q, "pending", "state"), "cancelled");
  auto c = q.claim("worker");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->job_id, "running");  // the cancelled job's delivery is gone
  EXPECT_FALSE(q.cancel("running"));
  bool stop = true;
  EXPECT_TRUE(q.extend(*c, &stop));
  EXPECT_FALSE(stop);
  EXPECT_TRUE(q.request_stop("running"));
  EXPECT_TRUE(q.extend(*c, &stop));
  EXPECT_TRUE(stop);
  EXPECT_FALSE(q.request_stop("pending"));
  EXPECT_TRUE(q.finish(*c, Outcome::failed, "stopped"));

  // A scheduled retry can be cancelled too.
  ASSERT_TRUE(q.enqueue("retry", "p"));
  ASSERT_TRUE(q.claim("worker"));
  EXPECT_EQ(q.reap("reaper", 0ms).scheduled, 1);
  EXPECT_TRUE(q.cancel("retry"));
  EXPECT_EQ(conn_.call({"ZCARD", q.key("schedule")}).integer, 0);
}

TEST_F(RedisProtocolTest, ReadOfACancelledJobIsDropped) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.read("worker-a");
  ASSERT_TRUE(a);
  EXPECT_TRUE(q.cancel("j"));
  EXPECT_EQ(q.start(*a), ClaimStatus::stale);
  EXPECT_EQ(conn_.call({"XPENDING", q.key("stream"), "workers"}).elements.at(0).integer, 0);
}

TEST_F(RedisProtocolTest, AJobOfAnotherVersionIsNotStarted) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p"));
  conn_.call({"HSET", q.job_key("j"), "v", "2"});  // written by a newer submitter
  auto a = q.read("worker-a");
  ASSERT_TRUE(a);
  EXPECT_EQ(q.start(*a), ClaimStatus::stale);
  EXPECT_EQ(hget(q, "j", "state"), "pending");
}

// Review: START bumped the attempt and marked the job running before the client
// found the payload missing; then (known gap) the job stayed pending and was requeued
// after every lease, never dead-lettered. Now START dead-letters it at once.
TEST_F(RedisProtocolTest, StartOfAJobWithoutPayloadDeadLettersIt) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p", "sub"));
  conn_.call({"HDEL", q.job_key("j"), "payload"});
  auto a = q.read("worker-a");
  ASSERT_TRUE(a);
  EXPECT_EQ(q.start(*a), ClaimStatus::dead);
  EXPECT_EQ(hget(q, "j", "state"), "dead");
  EXPECT_EQ(hget(q, "j", "attempt"), "0");
  EXPECT_EQ(hget(q, "j", "worker"), "");
  EXPECT_NE(hget(q, "j", "result").find("no payload"), std::string::npos);
  EXPECT_EQ(conn_.call({"ZSCORE", q.key("dead"), "j"}).type, webexec::redis::Reply::Type::string);
  EXPECT_EQ(conn_.call({"XPENDING", q.key("stream"), "workers"}).elements.at(0).integer, 0);
  // The submitter hears of it.
  const auto replies = conn_.call({"XRANGE", q.reply_key("sub"), "-", "+"});
  ASSERT_EQ(replies.elements.size(), 1U);
  EXPECT_EQ(replies.elements[0].elements[1].elements.at(3).str, "dead");
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 0);
}

/// The entries of a reply stream as (job, state, result or "<big>").
std::vector<std::vector<std::string>> replies_of(Connection& conn, const std::string& key) {
  std::vector<std::vector<std::string>> out;
  for (const auto& e : conn.call({"XRANGE", key, "-", "+"}).elements) {
    std::map<std::string, std::string> f;
    const auto& fields = e.elements.at(1).elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) f[fields[i].str] = fields[i + 1].str;
    out.push_back({f["job"], f["state"], f.count("big") != 0 ? "<big>" : f["result"]});
  }
  return out;
}

TEST_F(RedisProtocolTest, EveryEndReachesTheSubmittersReplyStream) {
  auto q = queue({.max_attempts = 1, .reply_ttl = 60s, .reply_inline_max = 8});
  ASSERT_TRUE(q.enqueue("ok", "p", "sub"));
  ASSERT_TRUE(q.enqueue("big", "p", "sub"));
  ASSERT_TRUE(q.enqueue("gone", "p", "sub"));
  ASSERT_TRUE(q.enqueue("lost", "p", "sub"));
  ASSERT_TRUE(q.enqueue("nobody", "p"));  // no submitter: no reply stream at all
  EXPECT_TRUE(q.cancel("gone"));
  auto ok = q.claim("w");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->job_id, "ok");
  EXPECT_EQ(ok->reply_to, "sub");
  EXPECT_TRUE(q.finish(*ok, Outcome::succeeded, std::string("r\0", 2)));
  auto big = q.claim("w");
  ASSERT_TRUE(big);
  EXPECT_TRUE(q.finish(*big, Outcome::failed, "longer than eight bytes"));
  ASSERT_TRUE(q.claim("w"));  // "lost": its worker dies
  EXPECT_EQ(q.reap("reaper", 0ms).dead, 1);
  auto nobody = q.claim("w");
  ASSERT_TRUE(nobody);
  EXPECT_TRUE(q.finish(*nobody, Outcome::succeeded, "x"));
  const auto got = replies_of(conn_, q.reply_key("sub"));
  const std::vector<std::vector<std::string>> want = {
      {"gone", "cancelled", ""},
      {"ok", "succeeded", std::string("r\0", 2)},
      {"big", "failed", "<big>"},
      {"lost", "dead", "<big>"}};  // the message is longer than 8 bytes too
  EXPECT_EQ(got, want);
  const auto ttl = conn_.call({"PTTL", q.reply_key("sub")}).integer;
  EXPECT_GT(ttl, 50000);
  EXPECT_LE(ttl, 60000);
  EXPECT_EQ(conn_.call({"EXISTS", q.reply_key("")}).integer, 0);
}

TEST_F(RedisProtocolTest, ReplyStreamIsTrimmedToAboutItsMaxLength) {
  auto q = queue({.reply_max_len = 10});
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(q.enqueue("j" + std::to_string(i), "p", "sub"));
  while (auto c = q.claim("w")) ASSERT_TRUE(q.finish(*c, Outcome::succeeded, "r"));
  // MAXLEN ~ trims whole macro nodes (100 entries by default): bounded, not exact.
  EXPECT_LE(conn_.call({"XLEN", q.reply_key("sub")}).integer, 200);
}

// Known gap (d): a FINISH retried after a lost reply was refused as fenced off.
TEST_F(RedisProtocolTest, FinishRetriedBySameClaimIsAcceptedAndChangesNothing) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p", "sub"));
  auto c = q.claim("w");
  ASSERT_TRUE(c);
  EXPECT_TRUE(q.finish(*c, Outcome::succeeded, "first"));
  EXPECT_TRUE(q.finish(*c, Outcome::succeeded, "first"));  // the retry
  EXPECT_EQ(hget(q, "j", "result"), "first");
  EXPECT_EQ(replies_of(conn_, q.reply_key("sub")).size(), 1U);  // told once
  // Another claim of the same job (a stale attempt) is still fenced off.
  Claim other = *c;
  other.token = 7;
  EXPECT_FALSE(q.finish(other, Outcome::succeeded, "late"));
  other = *c;
  other.sid = "1-1";
  EXPECT_FALSE(q.finish(other, Outcome::succeeded, "late"));
}

// Known gap (d): claim() said nothing both for "queue empty" and "stale delivery".
TEST_F(RedisProtocolTest, ClaimTellsAnEmptyQueueFromAStaleDelivery) {
  auto q = queue();
  EXPECT_EQ(q.claim("w").status, ClaimStatus::empty);
  ASSERT_TRUE(q.enqueue("j", "p"));
  auto a = q.read("w");
  ASSERT_TRUE(a);
  EXPECT_EQ(q.reap("reaper", 0ms).requeued, 1);
  EXPECT_TRUE(q.cancel("j"));
  ASSERT_TRUE(q.enqueue("k", "p"));
  conn_.call({"HSET", q.job_key("k"), "state", "succeeded"});  // finished elsewhere
  EXPECT_EQ(q.claim("w").status, ClaimStatus::stale);
  EXPECT_EQ(q.claim("w").status, ClaimStatus::empty);
  // A bounded block on an empty queue returns empty after about the block.
  const auto t0 = Clock::now();
  EXPECT_EQ(q.claim("w", 100ms).status, ClaimStatus::empty);
  EXPECT_GE(Clock::now() - t0, 90ms);
}

TEST_F(RedisProtocolTest, ReleaseHandsARunningJobBackAtOnce) {
  auto q = queue();
  ASSERT_TRUE(q.enqueue("j", "p", "sub"));
  auto a = q.claim("worker-a");
  ASSERT_TRUE(a);
  ASSERT_TRUE(q.request_stop("j"));
  EXPECT_TRUE(q.release(*a));
  EXPECT_FALSE(q.release(*a));  // once
  EXPECT_EQ(hget(q, "j", "state"), "pending");
  EXPECT_EQ(hget(q, "j", "stop"), "0");  // known gap (e): the stop flag is not sticky
  auto b = q.claim("worker-b");          // no visibility timeout to wait for
  ASSERT_TRUE(b);
  EXPECT_EQ(b->token, 2);
  EXPECT_EQ(b->reply_to, "sub");
  EXPECT_FALSE(q.finish(*a, Outcome::succeeded, "a"));
  EXPECT_TRUE(q.finish(*b, Outcome::succeeded, "b"));
  EXPECT_EQ(hget(q, "j", "result"), "b");
}

TEST_F(RedisProtocolTest, KilledWorkersJobsAreRedeliveredNothingLost) {
  constexpr int kJobs = 200;
  constexpr int kInFlight = 10;
  auto q = queue();
  for (int i = 0; i < kJobs; ++i) ASSERT_TRUE(q.enqueue("j" + std::to_string(i), payload_of(i)));
  std::map<std::string, int> executions;
  // Worker A starts 10 jobs and is killed -9: it never finishes them.
  for (int i = 0; i < kInFlight; ++i) {
    auto c = q.claim("worker-a");
    ASSERT_TRUE(c);
    ++executions[c->job_id];
  }
  // Worker B drains the queue; its reaper takes back A's jobs after the lease.
  int wrong = 0;
  for (int round = 0; round < 100; ++round) {
    while (auto c = q.claim("worker-b")) {
      ++executions[c->job_id];
      if (c->payload != payload_of(std::stoi(c->job_id.substr(1)))) ++wrong;
      EXPECT_TRUE(q.finish(*c, Outcome::succeeded, c->payload + "!"));
    }
    if (q.reap("reaper", 0ms).requeued == 0) break;
  }
  Counts counts;
  counts.wrong = wrong;
  for (int i = 0; i < kJobs; ++i) {
    const std::string id = "j" + std::to_string(i);
    if (hget(q, id, "state") != "succeeded") ++counts.lost;
    if (hget(q, id, "result") != payload_of(i) + "!") ++counts.wrong;
    counts.duplicated += std::max(executions[id] - 1, 0);
  }
  print("KilledWorkersJobsAreRedeliveredNothingLost", counts);
  EXPECT_EQ(counts.lost, 0);
  EXPECT_EQ(counts.wrong, 0);
  EXPECT_LE(counts.duplicated, kInFlight);
}

/// Enqueues `n` jobs, kill -9s the server, restarts it, drains what survived.
Counts enqueue_kill_restart_drain(RedisServer& server, int n) {
  {
    Connection c = connect(server);
    JobQueue q(c, "test");
    q.load_library();
    for (int i = 0; i < n; ++i) {
      if (!q.enqueue("j" + std::to_string(i), payload_of(i))) ADD_FAILURE() << "duplicate " << i;
    }
  }
  server.kill9();
  server.restart();
  Connection c = connect(server);
  JobQueue q(c, "test");
  // No load_library(): functions are persisted in the AOF with the data. Without
  // persistence they are gone, and so is everything else.
  if (c.call({"FUNCTION", "LIST", "LIBRARYNAME", "webexec_v1"}).elements.empty()) {
    q.load_library();
  }
  Counts counts;
  std::set<std::string> seen;
  int claims = 0;
  while (auto claim = q.claim("worker")) {
    ++claims;
    seen.insert(claim->job_id);
    if (claim->payload != payload_of(std::stoi(claim->job_id.substr(1)))) ++counts.wrong;
    if (!q.finish(*claim, Outcome::succeeded, "ok")) ++counts.wrong;
  }
  counts.lost = n - static_cast<int>(seen.size());
  counts.duplicated = claims - static_cast<int>(seen.size());
  return counts;
}

TEST_F(RedisProtocolAofTest, RestartFromTheAofKeepsEnqueuedJobs) {
  const Counts counts = enqueue_kill_restart_drain(server_, 200);
  print("RestartFromTheAofKeepsEnqueuedJobs (appendfsync always)", counts);
  EXPECT_EQ(counts.lost, 0);
  EXPECT_EQ(counts.duplicated, 0);
  EXPECT_EQ(counts.wrong, 0);
}

TEST_F(RedisProtocolTest, NegativeControlWithoutPersistenceTheCheckerSeesLoss) {
  const Counts counts = enqueue_kill_restart_drain(server_, 50);
  print("NegativeControlWithoutPersistence", counts);
  EXPECT_EQ(counts.lost, 50);  // the same checker does detect loss
}

}  // namespace
