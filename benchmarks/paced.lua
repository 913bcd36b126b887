-- benchmarks/paced.lua: a wrk script that paces each connection, run by
-- benchmarks/http_load.sh for latency under a fixed offered load rather than at
-- saturation (a closed-loop wrk run measures its own queue: with N connections the mean
-- latency is N / throughput, whatever serves them).
--
--   wrk -t2 -c256 -d5s --latency -s benchmarks/paced.lua http://127.0.0.1:PORT/ -- 50
--
-- The argument after `--` is the pause in milliseconds before each request on each
-- connection (default 50): 256 connections x 1 request per 50 ms offer at most 5,120
-- requests/s. wrk's latency is measured from sending each request, so the pause is not
-- part of it. Each wrk thread runs this file in its own Lua state.

function init(args)
  pause_ms = tonumber(args[1] or "50") or 50
end

function delay()
  return pause_ms
end
