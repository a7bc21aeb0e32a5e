#!/usr/bin/env bash
# Prediction cache benchmark: latency at 1 connection of a cache hit against a miss, on the
# example models. The server is pinned to core 1 and wrk to core 0. For each model, three
# variants of one repository:
#   <m>         no response_cache: every request runs the model
#   <m>_cached  response_cache on, the same body every time: all hits after the first
#   <m>_cached  response_cache on, a different body every time: all misses (hash, run, store,
#               and evictions once max_bytes fills)
#   bench/run_cache.sh [model ...]        (default: mlp churn)
# Environment: DURATION (wrk seconds per run, default 10), BUILD (default build), ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(mlp churn)
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"
REPO="$OUT/cache_repo"
rm -rf "$REPO"
mkdir -p "$REPO"
for m in "${MODELS[@]}"; do
  /usr/bin/python3 - "$m" "$REPO" <<'PY'
import json, os, shutil, sys
m, repo = sys.argv[1], sys.argv[2]
for name, cache in ((m, None), (m + "_cached", {"enable": True, "max_bytes": 16 << 20, "ttl_ms": 600000})):
    shutil.copytree(os.path.join("models", m), os.path.join(repo, name))
    path = os.path.join(repo, name, "config.json")
    cfg = json.load(open(path)) if os.path.exists(path) else {}
    cfg.pop("name", None)
    if cache:
        cfg["response_cache"] = cache
    json.dump(cfg, open(path, "w"))
PY
done

PORT=$(free_port)
taskset -c 1 "$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$PORT" \
  --http-threads 1 --worker-threads 1 2>"$OUT/cache-server.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"

run() { # run NAME MODEL DISTINCT(1 or "") WHAT
  BODY="$OUT/$m.json" DISTINCT="$3" taskset -c 0 wrk -t1 -c1 -d"${DURATION}s" --latency -s bench/post_body.lua \
    "http://127.0.0.1:$PORT/v2/models/$2/infer" >"$OUT/wrk-cache-$1.txt"
  local rps p50 p99 tag
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-cache-$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-cache-$1.txt" | to_us)
  p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-cache-$1.txt" | to_us)
  tag=$(awk '/^BENCH/ {print $2" "$3" "$4" "$5}' "$OUT/wrk-cache-$1.txt")
  printf "%-6s %-14s %-7s %10s %9s %9s   %s\n" "$r" "$m" "$4" "$rps" "$p50" "$p99" "$tag"
}

printf "%-6s %-14s %-7s %10s %9s %9s\n" round model what "req/s" "p50_us" "p99_us"
for r in $(seq "$ROUNDS"); do
  for m in "${MODELS[@]}"; do
    run "$m-off-$r" "$m" "" "no-cache"
    run "$m-miss-$r" "${m}_cached" 1 "miss"
    run "$m-hit-$r" "${m}_cached" "" "hit"
  done
done
