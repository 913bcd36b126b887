// The redis engine's job protocol: the Functions library webexec_v1 (its Lua
// source) and JobQueue, its client. Runs on whichever thread owns the
// JobQueue's Connection (submitters, worker job threads, the heartbeat).
#include "redis/protocol.hpp"

#include <unistd.h>

#include <random>
#include <stdexcept>
#include <string>
#include <utility>

#include "webexec/config.hpp"

namespace webexec::redis {
namespace {

// The library. Every key a function touches is in KEYS; jobs carry v=1 and a
// worker of another version never starts them. Times are the server's (TIME).
// Job states: pending, scheduled, running, succeeded, failed, cancelled, dead.
constexpr std::string_view kLibrary = R"lua(#!lua name=webexec_v1
local V = '1'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- True if `consumer` owns the pending delivery `sid` of the group.
local function owns(stream, group, sid, consumer)
  local p = redis.call('XPENDING', stream, group, sid, sid, 1, consumer)
  return #p == 1
end

local function drop(stream, group, sid)
  if sid and sid ~= '' then
    redis.call('XACK', stream, group, sid)
    redis.call('XDEL', stream, sid)
  end
end

-- A fresh delivery of job `id` for submitter `reply_to` (may be empty).
local function deliver(stream, id, reply_to)
  return redis.call('XADD', stream, '*', 'job', id, 'v', V, 'r', reply_to or '')
end

-- Tells the job's submitter how it ended: one entry on its reply stream,
-- trimmed to about `r[1]` entries and kept `r[2]` ms after the last entry.
-- A result longer than `r[3]` bytes stays in the hash only ('big 1'). The
-- caller declared `replies`; it is used only if it is this job's reply
-- stream (the submitter reconciles from the hash otherwise).
-- r = {max_len, ttl_ms, inline_max}
local function reply(stream, replies, reply_to, id, state, result, attempt, r)
  if not reply_to or reply_to == '' then return end
  local prefix = string.sub(stream, 1, #stream - #'stream')
  if replies ~= prefix .. 'replies:' .. reply_to then return end
  if #result <= tonumber(r[3]) then
    redis.call('XADD', replies, 'MAXLEN', '~', r[1], '*', 'job', id, 'state', state,
               'attempt', attempt or '0', 'result', result)
  else
    redis.call('XADD', replies, 'MAXLEN', '~', r[1], '*', 'job', id, 'state', state,
               'attempt', attempt or '0', 'big', '1')
  end
  redis.call('PEXPIRE', replies, r[2])
end

-- Ends a job as dead: kept `dead_ttl` ms, listed in the dead zset (pruned by
-- age and to `dead_max` entries), and its submitter is told.
local function bury(stream, job, dead, replies, id, reply_to, attempt, message, dead_ttl,
                    dead_max, r)
  local now = now_ms()
  redis.call('HSET', job, 'state', 'dead', 'sid', '', 'ended', now, 'result', message)
  redis.call('HDEL', job, 'payload')
  redis.call('PEXPIRE', job, dead_ttl)
  redis.call('ZADD', dead, now, id)
  redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - tonumber(dead_ttl))
  redis.call('ZREMRANGEBYRANK', dead, 0, -(tonumber(dead_max) + 1))
  reply(stream, replies, reply_to, id, 'dead', message, attempt, r)
end

-- KEYS: stream, job   ARGV: id, payload, group, reply_to
local function enqueue(keys, args)
  if redis.call('EXISTS', keys[2]) == 1 then return 'DUP' end
  if redis.call('EXISTS', keys[1]) == 0 then
    redis.call('XGROUP', 'CREATE', keys[1], args[3], '0', 'MKSTREAM')
  end
  local sid = deliver(keys[1], args[1], args[4])
  redis.call('HSET', keys[2], 'v', V, 'state', 'pending', 'payload', args[2], 'attempt', 0,
             'sid', sid, 'enq', now_ms(), 'stop', 0, 'reply_to', args[4])
  return sid
end

-- KEYS: stream, job, dead, replies
-- ARGV: group, consumer, sid, time_limit_ms, job_id, dead_ttl_ms, dead_max,
--       reply max_len, reply ttl_ms, reply inline_max
-- Runs the job only for its current delivery, owned by this consumer: a worker
-- that read an older delivery and woke up after a requeue is refused.
local function start(keys, args)
  local h = redis.call('HMGET', keys[2], 'v', 'state', 'sid', 'payload', 'reply_to', 'attempt')
  if not h[2] then drop(keys[1], args[1], args[3]); return {'STALE', 'gone'} end
  if h[1] ~= V then return {'STALE', 'version ' .. tostring(h[1])} end
  if h[3] ~= args[3] then drop(keys[1], args[1], args[3]); return {'STALE', 'not the current delivery'} end
  if h[2] ~= 'pending' then
    if h[2] ~= 'running' then drop(keys[1], args[1], args[3]) end
    return {'STALE', h[2]}
  end
  if not owns(keys[1], args[1], args[3], args[2]) then return {'STALE', 'not the owner'} end
  -- A job that cannot run is neither counted as an attempt nor requeued
  -- forever: it is dead-lettered at once.
  if not h[4] then
    drop(keys[1], args[1], args[3])
    local message = 'the job hash has no payload'
    bury(keys[1], keys[2], keys[3], keys[4], args[5], h[5], h[6], message, args[6], args[7],
         {args[8], args[9], args[10]})
    return {'DEAD', message}
  end
  local now = now_ms()
  local attempt = redis.call('HINCRBY', keys[2], 'attempt', 1)
  redis.call('HSET', keys[2], 'state', 'running', 'worker', args[2], 'started', now,
             'deadline', now + tonumber(args[4]))
  return {'RUN', attempt, h[4]}
end

-- True if the claim (sid, token) still holds the running job.
local function holds(h, sid, token)
  return h[1] == 'running' and h[2] == sid and h[3] == token
end

-- KEYS: stream, job   ARGV: group, consumer, sid, token
local function extend(keys, args)
  local h = redis.call('HMGET', keys[2], 'state', 'sid', 'attempt', 'deadline', 'stop')
  if not holds(h, args[3], args[4]) then return {'LOST', 'stale'} end
  if not owns(keys[1], args[1], args[3], args[2]) then return {'LOST', 'not the owner'} end
  if now_ms() >= tonumber(h[4]) then return {'LOST', 'time limit'} end
  redis.call('XCLAIM', keys[1], args[1], args[2], 0, args[3], 'JUSTID')
  return {'OK', tonumber(h[5])}
end

-- KEYS: stream, job, replies
-- ARGV: group, sid, token, state, result, ttl_ms, job_id,
--       reply max_len, reply ttl_ms, reply inline_max
-- Fencing: only the current attempt of a running job may finish it. The same
-- claim finishing again (a retry after a lost reply) is told OK and changes
-- nothing.
local function finish(keys, args)
  local h = redis.call('HMGET', keys[2], 'state', 'sid', 'attempt', 'reply_to')
  if not holds(h, args[2], args[3]) then
    if (h[1] == 'succeeded' or h[1] == 'failed') and h[2] == args[2] and h[3] == args[3] then
      return {'OK', 'again'}
    end
    if h[2] ~= args[2] or (h[1] ~= 'running' and h[1] ~= 'pending') then
      drop(keys[1], args[1], args[2])
    end
    return {'STALE', tostring(h[1])}
  end
  redis.call('HSET', keys[2], 'state', args[4], 'result', args[5], 'ended', now_ms())
  redis.call('HDEL', keys[2], 'payload')
  redis.call('PEXPIRE', keys[2], args[6])
  drop(keys[1], args[1], args[2])
  reply(keys[1], keys[3], h[4], args[7], args[4], args[5], args[3], {args[8], args[9], args[10]})
  return {'OK'}
end

-- KEYS: stream, job   ARGV: group, sid, token, job_id
-- A worker that stops hands a running job back at once: a fresh delivery,
-- no wait for the visibility timeout. The attempt stays counted.
local function release(keys, args)
  local h = redis.call('HMGET', keys[2], 'state', 'sid', 'attempt', 'reply_to')
  if not holds(h, args[2], args[3]) then return 0 end
  drop(keys[1], args[1], args[2])
  local sid = deliver(keys[1], args[4], h[4])
  redis.call('HSET', keys[2], 'state', 'pending', 'sid', sid, 'stop', 0)
  return 1
end

-- KEYS: stream, job, schedule, dead, replies
-- ARGV: group, reaper, sid, job_id, max_attempts, backoff_ms, max_backoff_ms,
--       jitter_permille, dead_ttl_ms, dead_max, reply max_len, reply ttl_ms,
--       reply inline_max
-- After the reaper XAUTOCLAIMed `sid`: requeue, schedule or dead-letter it.
local function requeue(keys, args)
  local h = redis.call('HMGET', keys[2], 'state', 'sid', 'attempt', 'reply_to')
  if not h[1] or h[2] ~= args[3] or (h[1] ~= 'pending' and h[1] ~= 'running') then
    drop(keys[1], args[1], args[3])
    return 'DROPPED'
  end
  if not owns(keys[1], args[1], args[3], args[2]) then return 'BUSY' end
  drop(keys[1], args[1], args[3])
  local now = now_ms()
  local attempt = tonumber(h[3])
  if attempt >= tonumber(args[5]) then
    bury(keys[1], keys[2], keys[4], keys[5], args[4], h[4], h[3],
         'dead-lettered after ' .. attempt .. ' attempts', args[9], args[10],
         {args[11], args[12], args[13]})
    return 'DEAD'
  end
  local base = tonumber(args[6])
  if base > 0 and attempt > 0 then
    local delay = math.min(tonumber(args[7]), base * 2 ^ (attempt - 1))
    delay = math.floor(delay * (1000 + tonumber(args[8])) / 1000)
    redis.call('HSET', keys[2], 'state', 'scheduled', 'sid', '', 'stop', 0)
    redis.call('ZADD', keys[3], now + delay, args[4])
    return 'SCHEDULED'
  end
  local sid = deliver(keys[1], args[4], h[4])
  redis.call('HSET', keys[2], 'state', 'pending', 'sid', sid, 'stop', 0)
  return 'REQUEUED'
end

-- KEYS: stream, schedule, job   ARGV: job_id
local function promote(keys, args)
  local due = redis.call('ZSCORE', keys[2], args[1])
  if not due then return 'GONE' end
  local h = redis.call('HMGET', keys[3], 'state', 'reply_to')
  if h[1] ~= 'scheduled' then
    redis.call('ZREM', keys[2], args[1])
    return 'DROPPED'
  end
  if tonumber(due) > now_ms() then return 'NOTDUE' end
  redis.call('ZREM', keys[2], args[1])
  local sid = deliver(keys[1], args[1], h[2])
  redis.call('HSET', keys[3], 'state', 'pending', 'sid', sid, 'stop', 0)
  return 'PROMOTED'
end

-- KEYS: stream, job, schedule, replies
-- ARGV: group, job_id, ttl_ms, reply max_len, reply ttl_ms, reply inline_max
local function cancel(keys, args)
  local h = redis.call('HMGET', keys[2], 'state', 'sid', 'reply_to', 'attempt')
  if h[1] ~= 'pending' and h[1] ~= 'scheduled' then return 0 end
  drop(keys[1], args[1], h[2])
  redis.call('ZREM', keys[3], args[2])
  redis.call('HSET', keys[2], 'state', 'cancelled', 'sid', '', 'ended', now_ms(), 'result', '')
  redis.call('HDEL', keys[2], 'payload')
  redis.call('PEXPIRE', keys[2], args[3])
  reply(keys[1], keys[4], h[3], args[2], 'cancelled', '', h[4], {args[4], args[5], args[6]})
  return 1
end

-- KEYS: job
local function request_stop(keys, args)
  if redis.call('HGET', keys[1], 'state') ~= 'running' then return 0 end
  redis.call('HSET', keys[1], 'stop', 1)
  return 1
end

redis.register_function('webexec_v1_enqueue', enqueue)
redis.register_function('webexec_v1_start', start)
redis.register_function('webexec_v1_extend', extend)
redis.register_function('webexec_v1_finish', finish)
redis.register_function('webexec_v1_release', release)
redis.register_function('webexec_v1_requeue', requeue)
redis.register_function('webexec_v1_promote', promote)
redis.register_function('webexec_v1_cancel', cancel)
redis.register_function('webexec_v1_request_stop', request_stop)
)lua";

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

std::string function_name(std::string_view name) {
  return "webexec_v" + std::to_string(protocol_version) + "_" + std::string(name);
}

}  // namespace

namespace {
std::string random_hex(std::size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::random_device device;
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(device()) & 0xffU;
    out += kDigits[b >> 4U];
    out += kDigits[b & 0xfU];
  }
  return out;
}

}  // namespace

std::string make_client_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string name(host);
  // The id becomes part of key names: keep it to a safe alphabet.
  for (char& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) c = '_';
  }
  if (name.empty()) name = "host";
  return name + ":" + std::to_string(::getpid()) + ":" + random_hex(6);
}

JobQueue::JobQueue(Connection& connection, std::string queue, JobQueueOptions options)
    : connection_(connection),
      queue_(std::move(queue)),
      options_(options),
      prefix_("webexec:{" + queue_ + "}:") {
  if (queue_.empty()) throw std::invalid_argument("redis queue name is empty");
  if (queue_.find_first_of("{}") != std::string::npos) {
    throw std::invalid_argument("redis queue name " + quote_value(queue_) +
                                " contains '{' or '}', which would break its hash tag");
  }
  if (options_.max_attempts < 1) {
    throw std::invalid_argument("redis JobQueueOptions.max_attempts must be at least 1, not " +
                                std::to_string(options_.max_attempts));
  }
  const auto positive = [](const char* field, std::chrono::milliseconds value) {
    if (value.count() <= 0) {
      throw std::invalid_argument(std::string("redis JobQueueOptions.") + field +
                                  " must be more than 0 ms, not " + std::to_string(value.count()) +
                                  " ms");
    }
  };
  positive("time_limit", options_.time_limit);
  positive("result_ttl", options_.result_ttl);
  positive("dead_ttl", options_.dead_ttl);
  positive("max_backoff", options_.max_backoff);
  // backoff 0 is documented (straight back to the stream); only negative is wrong.
  if (options_.backoff.count() < 0) {
    throw std::invalid_argument("redis JobQueueOptions.backoff must be 0 ms or more, not " +
                                std::to_string(options_.backoff.count()) + " ms");
  }
  if (options_.reply_max_len <= 0 || options_.reply_inline_max < 0) {
    throw std::invalid_argument(
        "redis JobQueueOptions.reply_max_len must be more than 0 and reply_inline_max 0 or "
        "more, not " +
        std::to_string(options_.reply_max_len) + " and " +
        std::to_string(options_.reply_inline_max));
  }
  positive("reply_ttl", options_.reply_ttl);
  if (options_.dead_max <= 0) {
    throw std::invalid_argument("redis JobQueueOptions.dead_max must be more than 0, not " +
                                std::to_string(options_.dead_max));
  }
}

std::string_view JobQueue::library_source() { return kLibrary; }

void JobQueue::load_library() { connection_.call({"FUNCTION", "LOAD", "REPLACE", kLibrary}); }

std::string JobQueue::job_key(std::string_view job_id) const {
  return prefix_ + "job:" + std::string(job_id);
}

std::string JobQueue::reply_key(std::string_view submitter) const {
  return prefix_ + "replies:" + std::string(submitter);
}

Reply JobQueue::fcall(std::string_view function, std::initializer_list<std::string_view> keys,
                      std::initializer_list<std::string_view> args) {
  const std::string name = function_name(function);
  const std::string numkeys = std::to_string(keys.size());
  std::vector<std::string_view> argv = {"FCALL", name, numkeys};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return connection_.call(argv);
}

void JobQueue::ensure_group() {
  const Reply r = connection_.command({"XGROUP", "CREATE", key("stream"), group, "0", "MKSTREAM"});
  if (r.is_error() && r.str.rfind("BUSYGROUP", 0) != 0) {
    throw CommandError(
        "redis " + connection_.endpoint() + ": XGROUP CREATE failed: " + escape_text(r.str, 200),
        r.str);
  }
}

bool JobQueue::enqueue(std::string_view job_id, std::string_view payload,
                       std::string_view reply_to) {
  const Reply r =
      fcall("enqueue", {key("stream"), job_key(job_id)}, {job_id, payload, group, reply_to});
  return !(r.type == Reply::Type::string && r.str == "DUP");
}

std::optional<Claim> JobQueue::read(std::string_view consumer, std::chrono::milliseconds block) {
  const std::string stream = key("stream");
  const std::string block_ms = ms(block);
  const auto xreadgroup = [&] {
    if (block.count() > 0) {
      return connection_.command({"XREADGROUP", "GROUP", group, consumer, "COUNT", "1", "BLOCK",
                                  block_ms, "STREAMS", stream, ">"});
    }
    return connection_.command(
        {"XREADGROUP", "GROUP", group, consumer, "COUNT", "1", "STREAMS", stream, ">"});
  };
  Reply r = xreadgroup();
  if (r.is_error() && r.str.rfind("NOGROUP", 0) == 0) {
    ensure_group();
    r = xreadgroup();
  }
  if (r.is_error()) {
    throw CommandError(
        "redis " + connection_.endpoint() + ": XREADGROUP failed: " + escape_text(r.str, 200),
        r.str);
  }
  // [[stream, [[sid, [field, value, ...]]]]]
  if (r.is_nil() || r.elements.empty() || r.elements[0].elements.size() < 2) return std::nullopt;
  const auto& entries = r.elements[0].elements[1].elements;
  if (entries.empty()) return std::nullopt;
  const auto& entry = entries[0];
  Claim claim;
  claim.sid = entry.elements.at(0).str;
  claim.consumer = std::string(consumer);
  const auto& fields = entry.elements.at(1).elements;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str == "job") claim.job_id = fields[i + 1].str;
    if (fields[i].str == "r") claim.reply_to = fields[i + 1].str;
  }
  return claim;
}

ClaimStatus JobQueue::start(Claim& claim) {
  const std::string limit = ms(options_.time_limit);
  const std::string dead_ttl = ms(options_.dead_ttl);
  const std::string dead_max = std::to_string(options_.dead_max);
  const std::string reply_max = std::to_string(options_.reply_max_len);
  const std::string reply_ttl = ms(options_.reply_ttl);
  const std::string inline_max = std::to_string(options_.reply_inline_max);
  const Reply r =
      fcall("start", {key("stream"), job_key(claim.job_id), key("dead"), reply_key(claim.reply_to)},
            {group, claim.consumer, claim.sid, limit, claim.job_id, dead_ttl, dead_max, reply_max,
             reply_ttl, inline_max});
  if (!r.elements.empty() && r.elements[0].str == "DEAD") return ClaimStatus::dead;
  if (r.elements.size() != 3 || r.elements[0].str != "RUN") return ClaimStatus::stale;
  claim.token = r.elements[1].integer;
  claim.payload = r.elements[2].str;
  return ClaimStatus::claimed;
}

ClaimResult JobQueue::claim(std::string_view consumer, std::chrono::milliseconds block) {
  ClaimResult out;
  auto c = read(consumer, block);
  if (!c) return out;
  out.status = start(*c);
  if (out.status == ClaimStatus::claimed) out.claim = std::move(c);
  return out;
}

bool JobQueue::extend(const Claim& claim, bool* stop_requested) {
  const std::string token = std::to_string(claim.token);
  const Reply r = fcall("extend", {key("stream"), job_key(claim.job_id)},
                        {group, claim.consumer, claim.sid, token});
  const bool ok = !r.elements.empty() && r.elements[0].str == "OK";
  if (ok && stop_requested != nullptr) {
    *stop_requested = r.elements.size() > 1 && r.elements[1].integer != 0;
  }
  return ok;
}

bool JobQueue::finish(const Claim& claim, Outcome outcome, std::string_view result) {
  const std::string token = std::to_string(claim.token);
  const std::string ttl = ms(options_.result_ttl);
  const std::string reply_max = std::to_string(options_.reply_max_len);
  const std::string reply_ttl = ms(options_.reply_ttl);
  const std::string inline_max = std::to_string(options_.reply_inline_max);
  const Reply r =
      fcall("finish", {key("stream"), job_key(claim.job_id), reply_key(claim.reply_to)},
            {group, claim.sid, token, outcome == Outcome::succeeded ? "succeeded" : "failed",
             result, ttl, claim.job_id, reply_max, reply_ttl, inline_max});
  return !r.elements.empty() && r.elements[0].str == "OK";
}

bool JobQueue::release(const Claim& claim) {
  const std::string token = std::to_string(claim.token);
  const Reply r = fcall("release", {key("stream"), job_key(claim.job_id)},
                        {group, claim.sid, token, claim.job_id});
  return r.integer == 1;
}

ReapCounts JobQueue::reap(std::string_view reaper, std::chrono::milliseconds min_idle, int count) {
  ReapCounts counts;
  const std::string stream = key("stream");
  const std::string idle = ms(min_idle);
  const std::string n = std::to_string(count);
  const std::string max_attempts = std::to_string(options_.max_attempts);
  const std::string backoff = ms(options_.backoff);
  const std::string max_backoff = ms(options_.max_backoff);
  const std::string dead_ttl = ms(options_.dead_ttl);
  const std::string dead_max = std::to_string(options_.dead_max);
  const std::string reply_max = std::to_string(options_.reply_max_len);
  const std::string reply_ttl = ms(options_.reply_ttl);
  const std::string inline_max = std::to_string(options_.reply_inline_max);
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::string cursor = "0-0";
  do {
    const Reply r =
        connection_.command({"XAUTOCLAIM", stream, group, reaper, idle, cursor, "COUNT", n});
    if (r.is_error()) {
      if (r.str.rfind("NOGROUP", 0) == 0) return counts;  // nothing was ever enqueued
      throw CommandError(
          "redis " + connection_.endpoint() + ": XAUTOCLAIM failed: " + escape_text(r.str, 200),
          r.str);
    }
    cursor = r.elements.at(0).str;
    for (const auto& entry : r.elements.at(1).elements) {
      if (entry.elements.size() < 2) continue;  // deleted from the stream meanwhile
      const std::string& sid = entry.elements[0].str;
      std::string job_id;
      std::string reply_to;
      const auto& fields = entry.elements[1].elements;
      for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        if (fields[i].str == "job") job_id = fields[i + 1].str;
        if (fields[i].str == "r") reply_to = fields[i + 1].str;
      }
      const std::string jitter = std::to_string(rng() % 251);
      const Reply done = fcall(
          "requeue", {stream, job_key(job_id), key("schedule"), key("dead"), reply_key(reply_to)},
          {group, reaper, sid, job_id, max_attempts, backoff, max_backoff, jitter, dead_ttl,
           dead_max, reply_max, reply_ttl, inline_max});
      if (done.str == "REQUEUED") ++counts.requeued;
      if (done.str == "SCHEDULED") ++counts.scheduled;
      if (done.str == "DEAD") ++counts.dead;
      if (done.str == "DROPPED") ++counts.dropped;
    }
  } while (cursor != "0-0");
  return counts;
}

int JobQueue::promote_due(int count) {
  const std::string schedule = key("schedule");
  const std::string n = std::to_string(count);
  const Reply time = connection_.call({"TIME"});
  const std::int64_t now =
      std::stoll(time.elements.at(0).str) * 1000 + std::stoll(time.elements.at(1).str) / 1000;
  const std::string upto = std::to_string(now);
  const Reply due = connection_.call({"ZRANGEBYSCORE", schedule, "-inf", upto, "LIMIT", "0", n});
  int promoted = 0;
  for (const auto& id : due.elements) {
    const Reply r = fcall("promote", {key("stream"), schedule, job_key(id.str)}, {id.str});
    if (r.str == "PROMOTED") ++promoted;
  }
  return promoted;
}

bool JobQueue::cancel(std::string_view job_id) {
  const std::string ttl = ms(options_.result_ttl);
  const std::string reply_max = std::to_string(options_.reply_max_len);
  const std::string reply_ttl = ms(options_.reply_ttl);
  const std::string inline_max = std::to_string(options_.reply_inline_max);
  // The reply stream is a key, so it is declared: its name comes from the
  // hash first (reply_to never changes once enqueued; CANCEL checks it).
  const Reply to = connection_.call({"HGET", job_key(job_id), "reply_to"});
  const std::string reply_to = to.type == Reply::Type::string ? to.str : std::string();
  const Reply r =
      fcall("cancel", {key("stream"), job_key(job_id), key("schedule"), reply_key(reply_to)},
            {group, job_id, ttl, reply_max, reply_ttl, inline_max});
  return r.integer == 1;
}

bool JobQueue::request_stop(std::string_view job_id) {
  return fcall("request_stop", {job_key(job_id)}, {}).integer == 1;
}

}  // namespace webexec::redis
