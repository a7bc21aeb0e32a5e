#!/usr/bin/env bash
# What observability costs: server CPU per request for churn (V2 JSON, one row) with everything
# observability has on, against all of it off, side by side in one run, interleaved (on off on
# off ...) so a change in the machine's load hits both alike. The server is pinned to core 1,
# wrk (1 thread, 16 connections, DURATION s) to core 0; CPU is the server's user + system time
# over the load (/proc/PID/stat), divided by the requests the server answered.
#   on:  --metrics on --log-format json, and when this build has them (`inferd serve --help`):
#        tracing at 1 % to a collector that is not there (--otlp-endpoint, --trace-sample-ratio
#        0.01), drift (--drift on)
#   off: --metrics off --log-format text (the access log itself cannot be turned off)
#   bench/obs_overhead.sh          Environment: BUILD (default build), REPS (default 3), DURATION (10)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
REPS=${REPS:-3}
DURATION=${DURATION:-10}
PY=/usr/bin/python3
OUT=bench/out
mkdir -p "$OUT"
$PY bench/make_bodies.py "$OUT"
HELP=$("$BUILD/inferd" serve --help 2>&1 || true)
has() { grep -q -- "$1" <<<"$HELP"; }
ON=(--metrics on --log-format json)
OFF=(--metrics off --log-format text)
if has --otlp-endpoint; then
  ON+=(--otlp-endpoint "http://127.0.0.1:$(free_port)/v1/traces")
  OFF+=()
fi
has --trace-sample-ratio && ON+=(--trace-sample-ratio 0.01)
has "--drift " && ON+=(--drift on) && OFF+=(--drift off)
echo "on:  ${ON[*]}"
echo "off: ${OFF[*]}"

# run NAME ARGS...: one server, one load; prints "NAME requests cpu_us_per_request"
run() {
  local name=$1
  shift
  local http grpc
  http=$(free_port)
  grpc=$(free_port)
  taskset -c 1 "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$http" --grpc-port "$grpc" \
    --worker-threads 1 --http-threads 1 "$@" >"$OUT/obs-$name.log" 2>&1 &
  local pid=$!
  wait_up "http://127.0.0.1:$http/v2/health/ready"
  local url="http://127.0.0.1:$http/v2/models/churn/infer"
  env BODY="$OUT/churn.json" taskset -c 0 wrk -t1 -c16 -d2s -s bench/post_body.lua "$url" >/dev/null # warm
  local t0 n0 t1 n1
  t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
  n0=$(curl -sf "http://127.0.0.1:$http/v2/models/churn/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["success"]["count"])')
  env BODY="$OUT/churn.json" taskset -c 0 wrk -t1 -c16 -d"${DURATION}s" -s bench/post_body.lua "$url" >"$OUT/obs-$name-wrk.txt"
  t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
  n1=$(curl -sf "http://127.0.0.1:$http/v2/models/churn/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["success"]["count"])')
  kill -TERM $pid
  wait $pid || true
  awk -v name="$name" -v n=$((n1 - n0)) -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%-4s requests %8d  server CPU %6.2f us/request  (%.0f req/s)\n", name, n, t / hz * 1e6 / n, n / '"$DURATION"' }'
}

: >"$OUT/obs-overhead.txt"
for rep in $(seq "$REPS"); do
  run on "${ON[@]}" | tee -a "$OUT/obs-overhead.txt"
  run off "${OFF[@]}" | tee -a "$OUT/obs-overhead.txt"
done
# medians and their ratio
$PY - "$OUT/obs-overhead.txt" <<'PYEOF'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    f = line.split()
    v.setdefault(f[0], []).append(float(f[5]))
on, off = statistics.median(v["on"]), statistics.median(v["off"])
print(f"median server CPU per request: on {on:.2f} us, off {off:.2f} us, on/off {on / off:.3f} ({(on / off - 1) * 100:+.1f} %)")
PYEOF
