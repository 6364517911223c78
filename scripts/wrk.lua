-- wrk script for `make bench` and `make soak`: send METHOD (default POST) with an optional JSON
-- BODY, count every response outside 2xx (wrk's own count lets 3xx pass) and print the totals
-- as one `RESULT key=value ...` line at the end.
-- Usage: wrk -t2 -c64 -d60s -s scripts/wrk.lua URL -- POST '{"<feature>": 12.0, ...}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = args[1] or "POST"
  if args[2] then
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
  end
  non_2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

function done(summary, latency, requests)
  local non_2xx_total = 0
  for _, thread in ipairs(threads) do
    non_2xx_total = non_2xx_total + thread:get("non_2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non_2xx=%d connect=%d read=%d write=%d timeout=%d "
      .. "p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, non_2xx_total, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
