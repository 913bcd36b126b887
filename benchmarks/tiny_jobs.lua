-- benchmarks/tiny_jobs.lua: a wrk script for the seed's flow with unique keys, run by
-- benchmarks/http_load.sh against the example service's tiny-job route
-- (examples/service.cpp): GET /tiny submits a tiny stored job under a fresh key (202
-- with the key), then GET /tiny/<key> is polled until it answers "done" (the job is then
-- popped, one atomic step), then the next job starts.
--
--   wrk -t16 -c16 -d5s --latency -s benchmarks/tiny_jobs.lua http://127.0.0.1:PORT/
--
-- Run it with exactly one connection per wrk thread (-tN -cN): wrk keeps one Lua state
-- per thread, and with more connections than threads a key returned on one connection
-- would be polled on another while this state waits for it. http_load.sh always runs it
-- so; any unexpected answer is counted in `errors` and starts a fresh job.
--
-- It reports completed jobs per second and the job latency (from sending the submit to
-- receiving "done", polls included) as p50 / p90 / p99 / max, from a per-thread
-- histogram (1 us buckets below 1 ms, then 10 us below 10 ms, 100 us below 100 ms,
-- 1 ms above), plus one machine-readable line:
--   tiny_jobs: jobs=<n> jobs_per_s=<x> p50_ms=<x> p99_ms=<x> polls_per_job=<x> errors=<n>
-- Each wrk thread runs this file in its own Lua state (LuaJIT): the clock is
-- clock_gettime(CLOCK_MONOTONIC) through LuaJIT's ffi.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } tiny_jobs_timespec;
  int clock_gettime(int clock_id, tiny_jobs_timespec* ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("tiny_jobs_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local function bucket(us)
  if us < 1000 then return math.floor(us) end
  if us < 10000 then return math.floor(us / 10) * 10 end
  if us < 100000 then return math.floor(us / 100) * 100 end
  return math.floor(us / 1000) * 1000
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

-- Per-thread state (globals, so done() can read them with thread:get).
function init(args)
  key = nil          -- the job this connection is polling, nil: submit the next one
  started = 0        -- when the current job's submit was sent (us)
  submits, polls, jobs, errors = 0, 0, 0, 0
  error_statuses = ""
  hist = {}          -- bucket (us) -> count of completed jobs
  submit_request = wrk.format("GET", "/tiny")
end

function request()
  if key then
    polls = polls + 1
    return wrk.format("GET", "/tiny/" .. key)
  end
  submits = submits + 1
  started = now_us()
  return submit_request
end

local function fail(status)
  errors = errors + 1
  if #error_statuses < 200 then error_statuses = error_statuses .. " " .. status end
  key = nil          -- start over with a fresh job
end

function response(status, headers, body)
  if key == nil then
    local k = status == 202 and body:match('"key":"(%x+)"')
    if k then key = k else fail(status) end
    return
  end
  if status ~= 200 then return fail(status) end
  if body:find('"status":"done"', 1, true) then
    local b = bucket(now_us() - started)
    hist[b] = (hist[b] or 0) + 1
    jobs = jobs + 1
    key = nil
  elseif not (body:find('"PENDING"', 1, true) or body:find('"RUNNING"', 1, true)) then
    fail(status)
  end
end

local function percentile(sorted, counts, total, p)
  local want, seen = math.max(1, math.ceil(total * p)), 0
  for _, b in ipairs(sorted) do
    seen = seen + counts[b]
    if seen >= want then return b end
  end
  return sorted[#sorted] or 0
end

function done(summary, latency, requests)
  local counts, total, t = {}, 0, {submits = 0, polls = 0, jobs = 0, errors = 0}
  local statuses = ""
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + thread:get(name) end
    for b, n in pairs(thread:get("hist")) do counts[b] = (counts[b] or 0) + n end
    statuses = statuses .. thread:get("error_statuses")
  end
  local sorted = {}
  for b, n in pairs(counts) do
    table.insert(sorted, b)
    total = total + n
  end
  table.sort(sorted)
  local seconds = summary.duration / 1e6
  local p = function(q) return percentile(sorted, counts, total, q) / 1000 end
  io.write(string.format("jobs completed: %d in %.2f s (%d submits, %d polls, %d errors%s)\n",
                         t.jobs, seconds, t.submits, t.polls, t.errors,
                         t.errors > 0 and (": statuses" .. statuses:sub(1, 200)) or ""))
  io.write(string.format("job latency (submit -> done): p50 %.3f ms, p90 %.3f ms, " ..
                         "p99 %.3f ms, max %.3f ms\n", p(0.5), p(0.9), p(0.99), p(1.0)))
  io.write(string.format("tiny_jobs: jobs=%d jobs_per_s=%.0f p50_ms=%.3f p99_ms=%.3f " ..
                         "polls_per_job=%.2f errors=%d\n", t.jobs, t.jobs / seconds, p(0.5),
                         p(0.99), t.jobs > 0 and t.polls / t.jobs or 0, t.errors))
end
