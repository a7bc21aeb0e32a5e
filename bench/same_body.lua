-- wrk script for bench/run_cache.sh: POSTs the JSON file named by BODY, the same each time
-- (after the first, each is a cache hit on a model with response_cache), counting non-200
-- answers and X-Cache values.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

-- per-thread counters (globals, so done(), which runs in another Lua state, can read them)
bad, hits, misses = 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
  if headers["X-Cache"] == "hit" then hits = hits + 1 elseif headers["X-Cache"] == "miss" then misses = misses + 1 end
end

function done(summary, latency, requests)
  local b, h, m = 0, 0, 0
  for _, t in ipairs(threads) do
    b, h, m = b + t:get("bad"), h + t:get("hits"), m + t:get("misses")
  end
  io.write(string.format("BENCH non200=%d errors=%d hits=%d misses=%d\n", b,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    h, m))
end
