#!/usr/bin/env bash
# TLS cost, side by side in one run, the server pinned to one core and the load to the other:
#  1. keep-alive throughput, HTTPS against plain HTTP on the same inferd (--http-plain-port):
#     POST /v2/models/churn/infer (a real request) and GET /v2/health/live (the HTTP layer alone);
#  2. new TLS handshakes per second (wrk with "Connection: close": one full handshake per
#     request, no session resumption), inferd against nginx on loopback with the same
#     certificate, both answering a 13-byte JSON body.
# Rounds alternate the contenders so that drift on a shared machine hits both; medians are printed.
# Besides req/s, each run's server CPU time (utime + stime of the whole process, /proc/PID/stat)
# is divided by the requests wrk completed: CPU per request does not depend on how much of the
# core other programs took during the run, and 1e6 / (µs per request) is what one core could do.
#   bench/tls.sh
# Environment: DURATION (seconds per wrk run, default 8), ROUNDS (default 3), CONNS (default 16),
# BUILD (default build), SERVER_CPU (default 1), LOAD_CPU (default 0), KEY (ec | rsa, default ec).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-16}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
KEY=${KEY:-ec}
OUT=bench/out/tls
rm -rf "$OUT" && mkdir -p "$OUT"
/usr/bin/python3 bench/make_bodies.py bench/out >/dev/null

# -- certificates: a CA and a server certificate for 127.0.0.1 -----------------------------------
if [ "$KEY" = rsa ]; then NEWKEY=(-newkey rsa:2048); else NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); fi
openssl req -x509 "${NEWKEY[@]}" -nodes -keyout "$OUT/ca.key" -out "$OUT/ca.pem" -days 1 -subj "/CN=bench CA" 2>/dev/null
openssl req "${NEWKEY[@]}" -nodes -keyout "$OUT/server.key" -out "$OUT/server.csr" -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$OUT/server.ext"
openssl x509 -req -in "$OUT/server.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" -CAcreateserial \
  -out "$OUT/server.pem" -days 1 -extfile "$OUT/server.ext" 2>/dev/null

# -- inferd: HTTPS on one port, plain HTTP on another, one loop, pinned ----------------------------
PORT=$(free_port)
PLAIN=$(free_port)
taskset -c "$SERVER_CPU" "$BUILD/inferd" serve --model-repository models --host 127.0.0.1 --http-port "$PORT" \
  --http-plain-port "$PLAIN" --http-threads 1 --worker-threads 1 --grpc-port "$(free_port)" \
  --tls-cert "$OUT/server.pem" --tls-key "$OUT/server.key" 2>"$OUT/inferd.log" &
INFERD=$!

# -- nginx: one worker, no master, pinned to the same core, the same certificate ------------------
NGINX_PORT=$(free_port)
nginx_tls_conf "$OUT/nginx" "$NGINX_PORT" 4096
taskset -c "$SERVER_CPU" nginx -p "$PWD/$OUT/nginx" -c "$PWD/$OUT/nginx/nginx.conf" 2>"$OUT/nginx/stderr.log" &
NGINX=$!
trap 'kill -TERM $INFERD $NGINX 2>/dev/null; wait $INFERD $NGINX 2>/dev/null || true' EXIT
for u in "https://127.0.0.1:$PORT/v2/health/ready" "https://127.0.0.1:$NGINX_PORT/"; do
  for _ in $(seq 200); do curl -sf --cacert "$OUT/ca.pem" "$u" >/dev/null && break; sleep 0.1; done
  curl -sf --cacert "$OUT/ca.pem" "$u" >/dev/null || { echo "$u did not come up" >&2; exit 1; }
done
curl -sf "http://127.0.0.1:$PLAIN/v2/health/ready" >/dev/null

# wrk NAME PID URL [wrk args...]: one run on the load core against server PID; records its
# req/s and the server's CPU µs per request under NAME
declare -A RUNS CPU
TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
  local name=$1 pid=$2 url=$3
  shift 3
  local t0 t1
  t0=$(cpu_ticks "$pid")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url" >"$OUT/wrk-$name-$r.txt"
  t1=$(cpu_ticks "$pid")
  local rps n err us
  rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$name-$r.txt")
  n=$(awk '/requests in/ {print $1}' "$OUT/wrk-$name-$r.txt")
  err=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$OUT/wrk-$name-$r.txt")
  us=$(awk -v t=$((t1 - t0)) -v k="$TICK_US" -v n="$n" 'BEGIN {printf "%.1f", t * k / n}')
  RUNS[$name]="${RUNS[$name]:-} $rps"
  CPU[$name]="${CPU[$name]:-} $us"
  printf "  round %d %-18s %10s req/s %8s server CPU µs/req  %s\n" "$r" "$name" "$rps" "$us" "$err"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

INFER=(-s bench/post_body.lua)
echo "keep-alive, $CONNS connections, ${DURATION}s per run, server on cpu $SERVER_CPU, wrk on cpu $LOAD_CPU"
for r in $(seq "$ROUNDS"); do
  BODY=bench/out/churn.json run infer-http "$INFERD" "http://127.0.0.1:$PLAIN/v2/models/churn/infer" "${INFER[@]}"
  BODY=bench/out/churn.json run infer-https "$INFERD" "https://127.0.0.1:$PORT/v2/models/churn/infer" "${INFER[@]}"
  run live-http "$INFERD" "http://127.0.0.1:$PLAIN/v2/health/live"
  run live-https "$INFERD" "https://127.0.0.1:$PORT/v2/health/live"
done
echo "new connection per request (Connection: close): a full TLS handshake each"
for r in $(seq "$ROUNDS"); do
  run handshake-inferd "$INFERD" "https://127.0.0.1:$PORT/v2/health/live" -H "Connection: close"
  run handshake-nginx "$NGINX" "https://127.0.0.1:$NGINX_PORT/" -H "Connection: close"
done

echo
printf "%-18s %12s %22s %22s\n" run "median req/s" "median CPU µs/req" "one core's req/s"
for n in infer-http infer-https live-http live-https handshake-inferd handshake-nginx; do
  us=$(echo "${CPU[$n]}" | median)
  printf "%-18s %12s %22s %22s\n" "$n" "$(echo "${RUNS[$n]}" | median)" "$us" "$(awk -v u="$us" 'BEGIN {printf "%.0f", 1e6 / u}')"
done
ratio() { awk -v a="$(echo "${RUNS[$1]}" | median)" -v b="$(echo "${RUNS[$2]}" | median)" 'BEGIN {printf "%.1f %%", 100*a/b}'; }
cratio() { awk -v a="$(echo "${CPU[$1]}" | median)" -v b="$(echo "${CPU[$2]}" | median)" 'BEGIN {printf "%.1f %%", 100*b/a}'; }
echo
echo "                                        by req/s   by CPU per request"
echo "HTTPS / HTTP keep-alive, churn infer:   $(ratio infer-https infer-http)   $(cratio infer-https infer-http)"
echo "HTTPS / HTTP keep-alive, health/live:   $(ratio live-https live-http)   $(cratio live-https live-http)"
echo "handshakes/s inferd / nginx:            $(ratio handshake-inferd handshake-nginx)   $(cratio handshake-inferd handshake-nginx)"
