-- wrk script for tests/e2e/test_scaleout.py and bench/scaleout.sh: POSTs the JSON file named by
-- BODY and counts the answers by HTTP status across all of wrk's threads (wrk itself only counts
-- non-2xx), printing "STATUS <code> <count>" lines, the socket errors and the request count.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("STATUS %d %d\n", code, n))
  end
  local e = summary.errors
  io.write(string.format("ERRORS connect=%d read=%d write=%d timeout=%d\n", e.connect, e.read, e.write, e.timeout))
  io.write(string.format("REQUESTS %d DURATION_US %d\n", summary.requests, summary.duration))
  io.write(string.format("LATENCY_US p50=%d p99=%d\n", latency:percentile(50), latency:percentile(99)))
end
