-- wrk script: GET one counted link (wrk's URL path), each request from a different reader (its
-- own browser user agent), as when a newsletter is shared widely.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  return wrk.format("GET", nil, {
    ["User-Agent"] = string.format("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 reader-%d-%d", id, counter),
  })
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
