#!/usr/bin/env bash
# Idle keep-alive connections: what N (default 10,000) idle connections cost inferd in memory,
# and whether a normal request is slower while they are open. One run, side by side:
#   A  p50 of a single-connection stream of churn infers (wrk -c1) on the idle server
#   B  the same with N idle keep-alive connections open (bench/idle_client.py holds them)
#   C  the same after they are closed
# and the server's RSS before, with and after. Loopback only; about a minute.
#   bench/idle_conns.sh                 N=10000 DURATION=5 BUILD=build
# Pass: RSS added by the N connections <= 50 MB, p50(B) <= 2 x p50(A). The script raises
# `ulimit -n` (the server and the client each hold N descriptors) and passes a generous
# --max-connections when the binary has that flag.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
N=${N:-10000}
DURATION=${DURATION:-5}
OUT=bench/out
mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py "$OUT"

want=$((N + 1000))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "ulimit -Hn is $hard, below the $want descriptors $N connections need" >&2
  exit 1
fi
ulimit -n "$want"

EXTRA=()
if "$BUILD/inferd" serve --help 2>&1 | grep -q -- '--max-connections'; then
  EXTRA=(--max-connections $((N * 2)))
fi

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

PORT=$(free_port)
taskset -c 1 "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" \
  --grpc-port 0 "${EXTRA[@]}" 2>"$OUT/idle-server.log" &
SERVER=$!
CLIENT=
FIFO=$(mktemp -u /tmp/inferd-idle-XXXXXX)
mkfifo "$FIFO"
cleanup() {
  [ -n "$CLIENT" ] && kill "$CLIENT" 2>/dev/null
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null || true
  rm -f "$FIFO"
}
trap cleanup EXIT
wait_up "http://127.0.0.1:$PORT/v2/health/ready"

URL="http://127.0.0.1:$PORT/v2/models/churn/infer"
p50_run() { # label -> prints p50 in µs; the wrk output goes to bench/out/idle-wrk-<label>.txt
  BODY="$OUT/churn.json" taskset -c 0 wrk -t1 -c1 -d"${DURATION}s" --latency -s bench/post_body.lua "$URL" \
    >"$OUT/idle-wrk-$1.txt"
  awk '$1=="50%" {print $2}' "$OUT/idle-wrk-$1.txt" | to_us
}
count() { awk '/requests in/ {print $1}' "$OUT/idle-wrk-$1.txt"; }
p99() { awk '$1=="99%" {print $2}' "$OUT/idle-wrk-$1.txt" | to_us; }
bad() { awk '/^BENCH/ {print $2" "$3}' "$OUT/idle-wrk-$1.txt"; }

BODY="$OUT/churn.json" taskset -c 0 wrk -t1 -c4 -d2s -s bench/post_body.lua "$URL" >/dev/null # warm-up
sleep 1
RSS0=$(rss_kb "$SERVER"); FD0=$(fds "$SERVER")
P50_A=$(p50_run A)

# Hold N idle connections; the client is told to let go by a line on the FIFO.
taskset -c 0 /usr/bin/python3 bench/idle_client.py 127.0.0.1 "$PORT" "$N" <"$FIFO" >"$OUT/idle-client.txt" &
CLIENT=$!
exec 3>"$FIFO"
for _ in $(seq 600); do grep -q '^READY' "$OUT/idle-client.txt" && break; sleep 0.1; done
READY=$(grep '^READY' "$OUT/idle-client.txt" || echo "READY (client did not report)")
sleep 1
RSS1=$(rss_kb "$SERVER"); FD1=$(fds "$SERVER")
P50_B=$(p50_run B)
RSS2=$(rss_kb "$SERVER"); FD2=$(fds "$SERVER")
echo >&3
exec 3>&-
wait "$CLIENT" || true
CLIENT=
DONE=$(grep '^DONE' "$OUT/idle-client.txt" || echo "DONE (client did not report)")
sleep 1
P50_C=$(p50_run C)
RSS3=$(rss_kb "$SERVER"); FD3=$(fds "$SERVER")

echo "inferd $(git rev-parse --short HEAD) ($BUILD), $N idle keep-alive connections, ulimit -n $(ulimit -n), server args: ${EXTRA[*]:-(none)}"
echo "client: $READY"
echo "client: $DONE"
printf "%-34s %10s %8s %10s %10s %9s   %s\n" phase rss_MB fds p50_us p99_us requests "wrk non-200/errors"
printf "%-34s %10.1f %8d %10s %10s %9s   %s\n" "A idle server" "$(echo "$RSS0/1024" | bc -l)" "$FD0" "$P50_A" "$(p99 A)" "$(count A)" "$(bad A)"
printf "%-34s %10.1f %8d %10s %10s %9s   %s\n" "B with $N idle connections" "$(echo "$RSS1/1024" | bc -l)" "$FD1" "$P50_B" "$(p99 B)" "$(count B)" "$(bad B)"
printf "%-34s %10.1f %8d %10s %10s %9s   %s\n" "  (after B's requests)" "$(echo "$RSS2/1024" | bc -l)" "$FD2" "" "" "" ""
printf "%-34s %10.1f %8d %10s %10s %9s   %s\n" "C after they closed" "$(echo "$RSS3/1024" | bc -l)" "$FD3" "$P50_C" "$(p99 C)" "$(count C)" "$(bad C)"
ADDED=$(echo "($RSS2 - $RSS0)/1024" | bc -l)
RATIO=$(echo "$P50_B / $P50_A" | bc -l)
printf "RSS added by the idle connections: %.1f MB (limit 50)   p50 B/A: %.2fx (limit 2.00)\n" "$ADDED" "$RATIO"
ok=1
awk -v a="$ADDED" 'BEGIN{exit !(a <= 50)}' || ok=0
awk -v r="$RATIO" 'BEGIN{exit !(r <= 2)}' || ok=0
[ "$ok" = 1 ] && echo "PASS" || echo "FAIL"
