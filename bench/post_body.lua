-- The one wrk script of the bench scripts: POSTs the file named by the BODY environment variable.
--   BODY        the request body
--   HEADER_LEN  set: the body is a V2 binary tensor request (a JSON header of HEADER_LEN bytes,
--               then raw tensor bytes), sent as application/octet-stream; unset: JSON
--   DISTINCT    set: the body's first "data" element is replaced by a per-request counter, so no
--               two requests are identical (each is a prediction-cache miss, in this run and
--               against earlier runs); unset: the same body every time
--   PACE_MS     set: each connection waits this long between its requests (wrk's delay())
--   API_KEY     set: sent as X-API-Key on every request
-- done() prints one line: BENCH non200=N errors=N hits=N misses=N (hits and misses: X-Cache).
local f = assert(io.open(os.getenv("BODY"), "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.body = body
local header_len = os.getenv("HEADER_LEN")
if header_len and header_len ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_len
else
  wrk.headers["Content-Type"] = "application/json"
end

local api_key = os.getenv("API_KEY")
if api_key and api_key ~= "" then wrk.headers["X-API-Key"] = api_key end

local pace = tonumber(os.getenv("PACE_MS") or "0")
if pace > 0 then function delay() return pace end end

local distinct = os.getenv("DISTINCT")
if distinct and distinct ~= "" then
  local head, tail = body:match('^(.-"data": %[)[^,%]]*(.*)$')
  assert(head, "DISTINCT: BODY has no \"data\": [ ... ]")
  -- Distinct across runs too (a later run must not hit what an earlier one stored): a base from
  -- the clock, 16,000 values a second apart; and below 2^24, where FP32 still tells consecutive
  -- integers apart (above it neighbours round to one value: the same tensor, a hit).
  local n = (os.time() % 1000) * 16000
  function request()
    n = n + 1
    return wrk.format(nil, nil, nil, head .. string.format("%.0f.25", n) .. tail)
  end
end

-- Every response must be a 200: count the others so a fast stream of errors is not mistaken
-- for throughput. The counters are per thread and global: done() runs in another Lua state and
-- reads each thread's through the thread objects setup() kept.
bad, hits, misses = 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
  local x = headers["X-Cache"]
  if x == "hit" then hits = hits + 1 elseif x == "miss" then misses = misses + 1 end
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
