-- wrk script for bench/run.py: POSTs one pre-built body with the given headers and, when the run
-- ends, prints one machine-readable line:
--   BENCH_RESULT {"requests":N,"duration_us":N,"rps":F,"p50_us":N,...,"non2xx":N,...}
-- usage: wrk ... -s bench/post.lua URL -- BODY_FILE "Header: value" ["Header: value" ...]
--
-- Non-2xx answers are counted by wrk itself (summary.errors.status: every status >= 400); a
-- response() callback would do the same, but it makes wrk copy every multi-megabyte body into Lua,
-- which would turn the load generator into the bottleneck on image-sized answers.

-- Optional staggered start (bench/held.py --start staggered): with BENCH_RAMP_MS and
-- BENCH_RAMP_FIRST (connections per wrk thread) set, each connection's first request waits a
-- random 0..BENCH_RAMP_MS ms, as independent clients do not all start in the same instant. The
-- wait is before sending, so it is not counted in any latency.
local ramp_ms = tonumber(os.getenv("BENCH_RAMP_MS") or "0") or 0
local ramp_left = tonumber(os.getenv("BENCH_RAMP_FIRST") or "0") or 0
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("seed", threads)
end

function delay()
   if ramp_left > 0 then
      ramp_left = ramp_left - 1
      return math.random(0, ramp_ms)
   end
   return 0
end

function init(args)
   math.randomseed(os.time() * 100 + (seed or 0))
   local path = args[1]
   if not path then
      error("post.lua: the first script argument must be the body file")
   end
   local file = assert(io.open(path, "rb"))
   wrk.method = "POST"
   wrk.body = file:read("*a")
   file:close()
   for i = 2, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      if name then
         wrk.headers[name] = value
      end
   end
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.3f,' ..
      '"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
      summary.requests, summary.duration, summary.bytes, summary.requests / seconds,
      latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
      latency.max, latency.mean,
      e.status, e.connect, e.read, e.write, e.timeout))
end
