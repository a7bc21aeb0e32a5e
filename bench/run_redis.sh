#!/usr/bin/env bash
# What shared state in Redis costs a request (docs/redis.md): churn (V2 JSON, one row) at one
# connection, the server pinned to core 1 and wrk to core 0, a local redis-server beside it.
#   rate:  --rate-limit 1000000/s (nothing refused), local store against --redis-url (one
#          EVALSHA round trip through the store's thread per request)
#   miss:  response_cache on, a different body every request (all misses), without and with
#          --redis-url (a GET before the run, a SET after)
#   bench/run_redis.sh     Environment: DURATION (wrk seconds per run, 10), BUILD (build), ROUNDS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"
REPO="$OUT/redis_repo"
rm -rf "$REPO"
mkdir -p "$REPO"
/usr/bin/python3 - "$REPO" <<'PY'
import json, os, shutil, sys
repo = sys.argv[1]
for name, cache in (("churn", None), ("churn_cached", {"enable": True, "max_bytes": 64 << 20, "ttl_ms": 600000})):
    shutil.copytree("models/churn", os.path.join(repo, name))
    path = os.path.join(repo, name, "config.json")
    cfg = json.load(open(path))
    cfg.pop("name", None)
    if cache:
        cfg["response_cache"] = cache
    json.dump(cfg, open(path, "w"))
PY

RPORT=$(free_port)
taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$OUT/redis-bench.log" &
REDIS=$!
SERVER=
cleanup() {
  [ -n "$SERVER" ] && { kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }
  kill -TERM "$REDIS" 2>/dev/null; wait "$REDIS" 2>/dev/null || true
}
trap cleanup EXIT

start() { # start EXTRA_ARGS...
  PORT=$(free_port)
  taskset -c 1 "$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$PORT" \
    --grpc-port 0 --http-threads 1 --worker-threads 1 --state-dir "$OUT/redis-state" "$@" \
    2>"$OUT/redis-server.log" &
  SERVER=$!
  wait_up "http://127.0.0.1:$PORT/v2/health/ready"
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; SERVER=; }

run() { # run ROUND WHAT MODEL SCRIPT
  BODY="$OUT/churn.json" taskset -c 0 wrk -t1 -c1 -d"${DURATION}s" --latency -s "$4" \
    "http://127.0.0.1:$PORT/v2/models/$3/infer" >"$OUT/wrk-redis-$2.txt"
  local rps p50 p99 tag
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-redis-$2.txt")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-redis-$2.txt" | to_us)
  p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-redis-$2.txt" | to_us)
  tag=$(awk '/^BENCH/ {print $2" "$3" "$4" "$5}' "$OUT/wrk-redis-$2.txt")
  printf "%-6s %-22s %10s %9s %9s   %s\n" "$1" "$2" "$rps" "$p50" "$p99" "$tag"
}

printf "%-6s %-22s %10s %9s %9s\n" round what "req/s" "p50_us" "p99_us"
URL="redis://127.0.0.1:$RPORT/0"
for r in $(seq "$ROUNDS"); do
  start --rate-limit 1000000/s --rate-burst 1000000
  run "$r" rate-local churn bench/post_body.lua
  stop
  start --rate-limit 1000000/s --rate-burst 1000000 --redis-url "$URL"
  run "$r" rate-redis churn bench/post_body.lua
  stop
  start
  run "$r" cache-miss-local churn_cached bench/distinct_body.lua
  stop
  start --redis-url "$URL"
  run "$r" cache-miss-redis churn_cached bench/distinct_body.lua
  stop
done
