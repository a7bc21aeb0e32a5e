#!/usr/bin/env bash
# What the rate limits cost: server CPU per churn request with open access against the same build
# with an API key and its rate limit (LIMITS=key, the default: the issue's comparison), a rate
# limit alone (LIMITS=rate: requests per second, anonymous) or every limit on (LIMITS=all:
# requests per second, requests in flight, records per minute), set so high that nothing is
# refused, so every request pays the limiter, the end hook and the RateLimit fields; side by
# side in one run, interleaved (open limited open limited ...): bench/
# cpu_per_request.sh with the server pinned to core 0 and wrk (2 threads, 64 connections, 10 s,
# V2 JSON) pinned to core 1. The limits come in through their INFERD_ variables.
#   bench/rate_limit_cpu.sh [BUILD] (default build); REPS (default 3); MODEL (default churn);
#   LIMITS (key, rate or all)
# Prints each run's µs of server CPU (every server thread, user + system) per request, then the
# means and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
REPS=${REPS:-3}
MODEL=${MODEL:-churn}
OUT=bench/out
mkdir -p "$OUT"
KEY=""
case "${LIMITS:-key}" in
  all) LIMITS=(INFERD_RATE_LIMIT=1000000/s INFERD_RATE_BURST=1000000 INFERD_MAX_CONCURRENT=100000
               INFERD_RECORDS_PER_MINUTE=1000000000) ;;
  rate) LIMITS=(INFERD_RATE_LIMIT=1000000/s INFERD_RATE_BURST=1000000) ;;
  key) # a key with a rate of its own; the client sends it (bench/post_body.lua's API_KEY)
    rm -f "$OUT/bench-keys.json"
    KEY=$("$BUILD/inferd" keys create --file "$OUT/bench-keys.json" --name bench --scopes 'infer:*,read' \
      --rate 1000000/s --burst 1000000 2>/dev/null)
    LIMITS=(INFERD_API_KEYS="$OUT/bench-keys.json") ;;
  *) echo "LIMITS must be key, rate or all" >&2; exit 2 ;;
esac
: >"$OUT/rate_limit_cpu.txt"
for rep in $(seq "$REPS"); do
  for mode in open limited; do
    if [ "$mode" = limited ]; then envs=("${LIMITS[@]}" API_KEY="$KEY"); else envs=(API_KEY=); fi
    log="$OUT/rate_limit_cpu-$mode-$rep.txt"
    env "${envs[@]}" BUILD="$BUILD" MODEL="$MODEL" taskset -c 0 bench/cpu_per_request.sh -- taskset -c 1 sh -c \
      "env BODY=$OUT/$MODEL.json wrk -t2 -c64 -d10s -s bench/post_body.lua http://127.0.0.1:\$HTTP_PORT/v2/models/$MODEL/infer" \
      >"$log"
    # the load must not have been refused: a limited run with 429s would measure refusals
    if ! grep -q "BENCH non200=0 " "$OUT/cpu-load.txt"; then
      echo "$mode run $rep: wrk saw non-2xx answers:" >&2
      cat "$OUT/cpu-load.txt" >&2
      exit 1
    fi
    us=$(awk 'NF == 3 && $1 != "thread" && $1 != "requests" { s += $2 + $3 } END { printf "%.1f", s }' "$log")
    n=$(awk '/requests counted/ { print $3 }' "$log")
    echo "$mode $rep $us $n" | tee -a "$OUT/rate_limit_cpu.txt"
  done
done
awk '{ s[$1] += $3; c[$1]++ } END {
  o = s["open"] / c["open"]; l = s["limited"] / c["limited"]
  printf "mean µs/request: open %.1f, limited %.1f, limited/open %.3f\n", o, l, l / o }' "$OUT/rate_limit_cpu.txt"
