-- wrk script for bench/run_cache.sh: POSTs the JSON file named by BODY with its first data
-- element replaced by a per-request counter, so no two requests are identical (each is a
-- cache miss, in this run and against earlier runs). Counts non-200 answers and X-Cache values as post_body.lua does.
local f = assert(io.open(os.getenv("BODY"), "rb"))
local body = f:read("*a")
f:close()
local head, tail = body:match('^(.-"data": %[)[^,%]]*(.*)$')
assert(head, "BODY has no \"data\": [ ... ]")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- Distinct across runs too (a later run must not hit what an earlier one stored): a base from
-- the clock, 16,000 values a second apart; and below 2^24, where FP32 still tells consecutive
-- integers apart (above it neighbours round to one value: the same tensor, a hit).
local n = (os.time() % 1000) * 16000
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. string.format("%.0f.25", n) .. tail)
end

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
