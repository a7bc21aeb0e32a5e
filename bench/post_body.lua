-- wrk script for the bench scripts: POSTs the file named by the BODY environment variable.
--   BODY        the request body
--   HEADER_LEN  set: the body is a V2 binary tensor request (a JSON header of HEADER_LEN bytes,
--               then raw tensor bytes), sent as application/octet-stream; unset: JSON
--   PACE_MS     set: each connection waits this long between its requests (wrk's delay())
--   API_KEY     set: sent as X-API-Key on every request
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
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

-- Every response must be a 200: count the others so a fast stream of errors is not mistaken
-- for throughput.
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("BENCH non200=%d errors=%d\n", bad,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
