-- wrk script used by bench/run.sh.
--   BENCH_AUTH            value of the Authorization header (optional)
--   BENCH_COOKIE          value of the Cookie header (optional)
--   BENCH_RATE_PER_THREAD target requests/s of each wrk thread (optional): paces requests with
--                         delay() against a per-thread schedule (LuaJIT ffi clock), an open-loop
--                         approximation of wrk2's -R (latency is measured from the actual send,
--                         so queueing before the send is not counted: no coordinated-omission
--                         correction).
-- At the end prints one line "JSON {...}" with rps and latency percentiles in milliseconds.

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE_PER_THREAD") or "")
local interval = nil
local next_slot = nil
if rate and rate > 0 then
  interval = 1000 / rate
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now - 50 then next_slot = now end
    local slot = next_slot
    next_slot = next_slot + interval
    local wait = slot - now
    if wait < 0 then wait = 0 end
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local function p(q) return latency:percentile(q) / 1000 end
  io.write(string.format(
    'JSON {"requests":%d,"secs":%.3f,"rps":%.1f,"bytes":%d,"mb_per_sec":%.2f,' ..
    '"mean_ms":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs, summary.bytes, summary.bytes / secs / 1048576,
    latency.mean / 1000, p(50), p(90), p(99), p(99.9), latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
