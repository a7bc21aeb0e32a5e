#!/usr/bin/env bash
# Soak: REQUESTS (default 1,000,000) V2 infers of churn (the example model, one row each) on
# loopback with wrk, the server's RSS sampled every second. Reports RSS after warm-up (the first
# 10 % of the requests), at the half-way mark and at the end, and the growth over the last half.
# Pass: every response 200 and RSS growth over the last half under 1 %.
#   bench/soak.sh            REQUESTS=1000000 CONNS=16 BUILD=build MAX_SECONDS=900
# The server runs on core 1 and wrk on core 0 (taskset). The samples (seconds, requests served,
# RSS kB) go to bench/out/soak-rss.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
REQUESTS=${REQUESTS:-1000000}
CONNS=${CONNS:-16}
MAX_SECONDS=${MAX_SECONDS:-900}
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"

EXTRA=()
if "$BUILD/inferd" serve --help 2>&1 | grep -q -- '--max-connections'; then
  EXTRA=(--max-connections 1000)
fi

PORT=$(free_port)
taskset -c 1 "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" \
  --grpc-port 0 "${EXTRA[@]}" 2>"$OUT/soak-server.log" &
SERVER=$!
WRK=
cleanup() {
  [ -n "$WRK" ] && kill "$WRK" 2>/dev/null
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status"; }
served() { # churn's successful inferences so far, from the server's own statistics
  curl -sf "http://127.0.0.1:$PORT/v2/models/churn/stats" |
    /usr/bin/python3 -c 'import json,sys; print(sum(m["inference_stats"]["success"]["count"] for m in json.load(sys.stdin)["model_stats"]))'
}

RSS_START=$(rss_kb)
BODY="$OUT/churn.json" taskset -c 0 wrk -t2 -c"$CONNS" -d"${MAX_SECONDS}s" --latency -s bench/post_body.lua \
  "http://127.0.0.1:$PORT/v2/models/churn/infer" >"$OUT/soak-wrk.txt" &
WRK=$!
CSV="$OUT/soak-rss.csv"
echo "seconds,requests,rss_kb" >"$CSV"
t0=$(date +%s.%N)
while :; do
  sleep 1
  n=$(served)
  t=$(echo "$(date +%s.%N) - $t0" | bc -l)
  printf "%.1f,%s,%s\n" "$t" "$n" "$(rss_kb)" >>"$CSV"
  [ "$n" -ge "$REQUESTS" ] && break
  kill -0 "$WRK" 2>/dev/null || break
done
kill -INT "$WRK" 2>/dev/null || true # wrk prints its summary on SIGINT
wait "$WRK" || true
WRK=
ELAPSED=$(echo "$(date +%s.%N) - $t0" | bc -l)
TOTAL=$(served)

echo "inferd $(git rev-parse --short HEAD) ($BUILD), churn, wrk -t2 -c$CONNS, server args: ${EXTRA[*]:-(none)}"
/usr/bin/python3 - "$CSV" "$REQUESTS" "$RSS_START" "$TOTAL" "$ELAPSED" <<'EOF'
import csv, sys
path, target, rss_start, total, elapsed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rows = [(float(r["seconds"]), int(r["requests"]), int(r["rss_kb"])) for r in csv.DictReader(open(path))]
def at(frac):  # the first sample at or past frac of the requests served
    return next((r for r in rows if r[1] >= frac * total), rows[-1])
warm, mid, end = at(0.10), at(0.50), rows[-1]
second_half = [r[2] for r in rows if r[1] >= mid[1]]
growth = (end[2] - mid[2]) / mid[2] * 100
peak_growth = (max(second_half) - mid[2]) / mid[2] * 100
print(f"served {total} requests in {elapsed:.1f} s ({total / elapsed:.0f} req/s), {len(rows)} RSS samples")
print(f"RSS MB: start {rss_start / 1024:.1f}, after warm-up (10 %) {warm[2] / 1024:.1f}, "
      f"half-way {mid[2] / 1024:.1f}, end {end[2] / 1024:.1f}, max of last half {max(second_half) / 1024:.1f}")
print(f"growth over the last half: {growth:+.2f} % (end vs half-way), {peak_growth:+.2f} % (max vs half-way); limit 1 %")
print("RSS_OK" if total >= target and growth < 1 and peak_growth < 1 else "RSS_FAIL")
EOF
grep -E 'Latency|requests in|Requests/sec|^BENCH|Socket errors|Non-2xx' "$OUT/soak-wrk.txt" || true
awk '/^BENCH/ {split($2,a,"="); split($3,b,"="); exit !(a[2]==0 && b[2]==0)}' "$OUT/soak-wrk.txt" &&
  echo "every response 200" || echo "FAIL: some responses were not 200 (see $OUT/soak-wrk.txt)"
