#!/usr/bin/env bash
# inferd against the FastAPI + uvicorn + scikit-learn peer (bench/peers/fastapi/app.py), both
# serving the same trained churn model with the same single-record /v1 predict request, driven
# by wrk at 1, 16 and 64 connections in one run. Prints both throughputs, both p50/p99, and
# inferd's throughput over the peer's.
#   bench/peers/fastapi/run.sh
# Environment: DURATION (wrk seconds per run, default 10), BUILD (default build),
# UVICORN_WORKERS (default 1: `uvicorn app:app`, the design the seeds teach; 2 for one process
# per core). uvicorn
# runs with httptools and uvloop (what uvicorn[standard] brings), not its pure-Python fallback.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
WORKERS=${UVICORN_WORKERS:-1}
OUT=bench/out/peers-fastapi
mkdir -p "$OUT"
BODY="$OUT/body.json"
cat >"$BODY" <<'JSON'
{"inputs": [{"tenure_months": 3, "monthly_charges": 89.5, "total_charges": 268.5, "support_calls": 2, "age": 29, "contract": "month-to-month", "payment_method": "electronic_check"}]}
JSON

IPORT=$(free_port)
FPORT=$(free_port)
"$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$IPORT" --grpc-port 0 2>"$OUT/inferd.log" &
INFERD=$!
/usr/bin/python3 -m uvicorn --app-dir bench/peers/fastapi app:app --host 127.0.0.1 --port "$FPORT" \
  --workers "$WORKERS" --http httptools --loop uvloop --log-level warning --no-access-log 2>"$OUT/fastapi.log" &
FASTAPI=$!
trap 'kill -TERM $INFERD $FASTAPI 2>/dev/null; wait $INFERD $FASTAPI 2>/dev/null || true' EXIT

wait_up "http://127.0.0.1:$IPORT/v2/health/ready"
wait_up "http://127.0.0.1:$FPORT/health"
IURL="http://127.0.0.1:$IPORT/v1/models/churn/predict"
FURL="http://127.0.0.1:$FPORT/v1/models/churn/predict"

# Same model, same answer.
/usr/bin/python3 - "$IURL" "$FURL" "$BODY" <<'PY'
import json, sys, urllib.request
body = open(sys.argv[3], "rb").read()
def ask(url):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["results"][0]
a, b = ask(sys.argv[1]), ask(sys.argv[2])
assert a["label"] == b["label"], (a, b)
assert abs(a["probabilities"]["churn"] - b["probabilities"]["churn"]) < 1e-5, (a, b)
print(f"both answer {a['label']} with P(churn) {a['probabilities']['churn']:.6f} / {b['probabilities']['churn']:.6f}")
PY

run() { # name url conns -> "rps p50 p99 bad"
  local t=$(( $3 < 2 ? 1 : 2 ))
  BODY="$BODY" wrk -t"$t" -c"$3" -d"${DURATION}s" --latency -s bench/post_body.lua "$2" >"$OUT/wrk-$1-$3.txt"
  local f="$OUT/wrk-$1-$3.txt"
  echo "$(awk '/^Requests\/sec/ {print $2}' "$f") $(awk '$1=="50%" {print $2}' "$f" | to_us) $(awk '$1=="99%" {print $2}' "$f" | to_us) $(awk '/^BENCH/ {print $2","$3}' "$f")"
}

echo "wrk ${DURATION}s per run; inferd: 2 HTTP loops + 2 workers; FastAPI: uvicorn --workers $WORKERS"
printf "%5s | %10s %9s %9s | %10s %9s %9s | %7s\n" conns "inferd/s" "p50_us" "p99_us" "fastapi/s" "p50_us" "p99_us" "ratio"
for c in 1 16 64; do
  read -r irps ip50 ip99 ibad <<<"$(run inferd "$IURL" "$c")"
  read -r frps fp50 fp99 fbad <<<"$(run fastapi "$FURL" "$c")"
  ratio=$(awk -v a="$irps" -v b="$frps" 'BEGIN{printf "%.1f", a/b}')
  printf "%5d | %10s %9s %9s | %10s %9s %9s | %6sx   (%s / %s)\n" "$c" "$irps" "$ip50" "$ip99" "$frps" "$fp50" "$fp99" "$ratio" "$ibad" "$fbad"
done
