#!/usr/bin/env bash
# HTTP benchmark: inferd serving models/ on loopback, driven by wrk at 1, 16 and 64
# connections on /v2/models/{m}/infer; then ONNX Runtime's own Run timed in-process on the same
# row (build/ort_bench), so the server's overhead per request is printed.
#   bench/run_http.sh [model ...]        (default: churn mlp)
# Environment: DURATION (wrk seconds per run, default 10), BUILD (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(churn mlp)
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"

PORT=$(free_port)
"$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"


printf "%-8s %5s %12s %10s %10s\n" model conns "req/s" "p50_us" "p99_us"
declare -A P50_1
for m in "${MODELS[@]}"; do
  for c in 1 16 64; do
    t=$(( c < 2 ? 1 : 2 ))
    BODY="$OUT/$m.json" wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s bench/post_body.lua \
      "http://127.0.0.1:$PORT/v2/models/$m/infer" >"$OUT/wrk-$m-$c.txt"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$m-$c.txt")
    p50=$(awk '$1=="50%" {print $2}' "$OUT/wrk-$m-$c.txt" | to_us)
    p99=$(awk '$1=="99%" {print $2}' "$OUT/wrk-$m-$c.txt" | to_us)
    bad=$(awk '/^BENCH/ {print $2" "$3}' "$OUT/wrk-$m-$c.txt")
    printf "%-8s %5d %12s %10s %10s   %s\n" "$m" "$c" "$rps" "$p50" "$p99" "$bad"
    [ "$c" = 1 ] && P50_1[$m]=$p50
  done
done

echo
printf "%-8s %14s %16s %14s\n" model "server_p50_us" "ort_run_p50_us" "overhead_us"
for m in "${MODELS[@]}"; do
  ort=$("$BUILD/ort_bench" "models/$m/1/model.onnx" --batch 1 --iterations 20000 --threads 1 |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["p50_us"])')
  printf "%-8s %14s %16s %14s\n" "$m" "${P50_1[$m]}" "$ort" "$(awk -v a="${P50_1[$m]}" -v b="$ort" 'BEGIN{printf "%.1f", a-b}')"
done
