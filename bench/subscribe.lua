-- wrk script: POST /api/v1/subscribe with a distinct address on every request.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = string.format("bench-%d-%d", id, math.random(1, 1000000000))
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"%s-%d@example.org","name":"Bench Person","language":"es"}', prefix, counter)
  return wrk.format("POST", "/api/v1/subscribe", { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
