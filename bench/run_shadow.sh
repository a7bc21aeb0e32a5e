#!/usr/bin/env bash
# Shadow traffic's cost to the live requests: churn (V2 JSON, one row) at 1 and 64 connections
# with the traffic policy's shadow off and at 100 % (to a second copy of the same model, default
# max_in_flight 16), alternating off/on twice. Server pinned to core 1, wrk to core 0.
#   bench/run_shadow.sh          Environment: DURATION (wrk seconds per run, default 10), BUILD.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
OUT=bench/out/shadow
rm -rf "$OUT" && mkdir -p "$OUT/models"
/usr/bin/python3 bench/make_bodies.py bench/out >/dev/null
cp -r models/churn "$OUT/models/churn"
cp -r "$OUT/models/churn/1" "$OUT/models/churn/2"
/usr/bin/python3 - "$OUT/models/churn/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["version_policy"] = {"all": True}
json.dump(c, open(sys.argv[1], "w"))
PY
PORT=$(free_port)
taskset -c 1 "$BUILD/inferd" serve --model-repository "$OUT/models" --state-dir "$OUT/state" --host 127.0.0.1 \
  --http-port "$PORT" --grpc-port 0 --worker-threads 1 --http-threads 1 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"
policy() {
  curl -sf -X PUT -H 'Content-Type: application/json' -d "$1" "http://127.0.0.1:$PORT/v1/models/churn/traffic" >/dev/null
}
OFF='{"arms": [{"name": "live", "version": 1}]}'
ON='{"arms": [{"name": "live", "version": 1}], "shadow": {"version": 2, "percent": 100}}'
printf "%-6s %5s %4s %10s %9s %9s   %s\n" shadow conns run "req/s" "p50_us" "p99_us" "shadow sent/dropped/compared"
for run in 1 2; do
  for mode in off on; do
    [ "$mode" = on ] && policy "$ON" || policy "$OFF"
    for c in 1 64; do
      before=$(curl -s "http://127.0.0.1:$PORT/v1/models/churn/traffic/report" |
        /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin).get("shadow") or {}; print(s.get("sent",0), s.get("dropped",0), s.get("compared",0))')
      BODY=bench/out/churn.json taskset -c 0 wrk -t1 -c"$c" -d"${DURATION}s" --latency -s bench/post_body.lua \
        "http://127.0.0.1:$PORT/v2/models/churn/infer" >"$OUT/wrk-$mode-$c-$run.txt"
      sleep 1
      after=$(curl -s "http://127.0.0.1:$PORT/v1/models/churn/traffic/report" |
        /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin).get("shadow") or {}; print(s.get("sent",0), s.get("dropped",0), s.get("compared",0))')
      rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$mode-$c-$run.txt")
      p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-$mode-$c-$run.txt" | to_us)
      p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-$mode-$c-$run.txt" | to_us)
      bad=$(awk '/^BENCH/ {print $2" "$3}' "$OUT/wrk-$mode-$c-$run.txt")
      delta=$(echo "$before $after" | awk '{printf "%d/%d/%d", $4-$1, $5-$2, $6-$3}')
      printf "%-6s %5d %4d %10s %9s %9s   %s %s\n" "$mode" "$c" "$run" "$rps" "$p50" "$p99" "$delta" "$bad"
    done
  done
done
