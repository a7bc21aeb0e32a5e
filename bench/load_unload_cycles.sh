#!/usr/bin/env bash
# Load/unload cycles (issue 10): CYCLES (default 200) unloads and loads of the mlp model through
# the repository API (POST /v2/repository/models/mlp/unload, then .../load, then one infer), on
# the release build in explicit mode. Reports the server's RSS (VmRSS in /proc/PID/status) and
# open file descriptors after 5 warm-up cycles, half-way and at the end, once every unloaded
# version has been freed (its "version 1 unloaded" log line).
# Pass: RSS growth over the CYCLES under 5 MB, no more open descriptors than after warm-up.
#   bench/load_unload_cycles.sh        CYCLES=200 BUILD=build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
CYCLES=${CYCLES:-200}
WARM=5
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT" >/dev/null
TMP=$(mktemp -d)
cp -r models/mlp "$TMP/mlp"
PORT=$(free_port)
LOG=$OUT/load-unload-server.log
"$BUILD/inferd" serve --model-repository "$TMP" --host 127.0.0.1 --http-port "$PORT" --grpc-port 0 \
  --model-control-mode explicit --load-model mlp 2>"$LOG" &
SERVER=$!
cleanup() {
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"
BASE=http://127.0.0.1:$PORT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status"; }
fds() { ls "/proc/$SERVER/fd" | wc -l; }
freed() { grep -c '"version 1 unloaded"\|version 1 unloaded' "$LOG" || true; }
post() { # path -> fails unless 200
  local code
  code=$(curl -s -o "$OUT/load-unload-last.txt" -w '%{http_code}' -X POST "$@")
  [ "$code" = 200 ] || { echo "$* answered $code: $(cat "$OUT/load-unload-last.txt")" >&2; exit 1; }
}
cycle() {
  post "$BASE/v2/repository/models/mlp/unload"
  post "$BASE/v2/repository/models/mlp/load"
  post -H 'Content-Type: application/json' --data-binary @"$OUT/mlp.json" "$BASE/v2/models/mlp/infer"
}
settle() { # n -> waits until n versions have been freed
  for _ in $(seq 300); do [ "$(freed)" -ge "$1" ] && return 0; sleep 0.1; done
  echo "only $(freed) of $1 unloaded versions freed" >&2
  exit 1
}

for _ in $(seq $WARM); do cycle; done
settle $WARM
sleep 0.5
RSS0=$(rss_kb); FD0=$(fds)
t0=$(date +%s.%N)
for i in $(seq "$CYCLES"); do
  cycle
  if [ "$i" = $((CYCLES / 2)) ]; then settle $((WARM + i)); RSSH=$(rss_kb); FDH=$(fds); fi
done
settle $((WARM + CYCLES))
sleep 0.5
RSS1=$(rss_kb); FD1=$(fds)
ELAPSED=$(echo "$(date +%s.%N) - $t0" | bc -l)

echo "inferd $(git rev-parse --short HEAD) ($BUILD), mlp, $CYCLES unload/load cycles (+$WARM warm-up) in $(printf %.1f "$ELAPSED") s"
printf "%-22s %10s %6s\n" "" rss_MB fds
printf "%-22s %10.1f %6d\n" "after warm-up" "$(echo "$RSS0/1024" | bc -l)" "$FD0"
printf "%-22s %10.1f %6d\n" "after $((CYCLES / 2)) cycles" "$(echo "$RSSH/1024" | bc -l)" "$FDH"
printf "%-22s %10.1f %6d\n" "after $CYCLES cycles" "$(echo "$RSS1/1024" | bc -l)" "$FD1"
GROWTH=$(echo "($RSS1 - $RSS0)/1024" | bc -l)
printf "RSS growth over %d cycles: %.2f MB (limit 5), open descriptors %d -> %d\n" "$CYCLES" "$GROWTH" "$FD0" "$FD1"
awk -v g="$GROWTH" 'BEGIN{exit !(g < 5)}' && [ "$FD1" -le "$FD0" ] && echo PASS || echo FAIL
