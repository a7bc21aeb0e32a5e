#!/usr/bin/env bash
# 1, 2 and 3 inferd replicas behind HAProxy (deploy/haproxy/render.sh's configuration) against
# one replica direct, all on this machine: throughput and latency under wrk, and the CPU each
# process used per request (HAProxy's own cost next to inferd's). Figures go to bench/RESULTS.md.
#   bench/scaleout.sh [seconds] [connections]        (default: 10 s, 64 connections; churn)
# Every replica runs --http-threads 1 --worker-threads 1, so N replicas ask for N cores' worth of
# inference; wrk, HAProxy and the replicas all share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SECONDS_EACH=${1:-10}
CONNS=${2:-64}
INFERD=${INFERD_BIN:-build/inferd}
OUT=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT

/usr/bin/python3 bench/make_bodies.py "$OUT"
mkdir -p "$OUT/repo" && cp -r models/churn "$OUT/repo/"

REPLICA_PORTS=()
REPLICA_PIDS=()
for i in 1 2 3; do
  port=$(free_port)
  "$INFERD" serve --model-repository "$OUT/repo" --host 127.0.0.1 --http-port "$port" --grpc-port 0 \
    --http-threads 1 --worker-threads 1 --state-dir "$OUT/state$i" --log-format text \
    >"$OUT/inferd$i.log" 2>&1 &
  PIDS+=($!)
  REPLICA_PIDS+=($!)
  REPLICA_PORTS+=("$port")
done
for port in "${REPLICA_PORTS[@]}"; do wait_up "http://127.0.0.1:$port/v2/health/ready"; done

# CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# run LABEL URL CONNS PID...: one wrk run; prints a table row with the CPU of the PIDs given
# (split: the first is HAProxy when one is in front, "-" otherwise).
run() {
  local label=$1 url=$2 conns=$3 hp=$4
  shift 4
  local before_hp=0 before_inf=0 after_hp=0 after_inf=0 p
  [ "$hp" != "-" ] && before_hp=$(cpu_ticks "$hp")
  for p in "$@"; do before_inf=$((before_inf + $(cpu_ticks "$p"))); done
  local threads=2
  [ "$conns" -lt 2 ] && threads=1
  BODY="$OUT/churn.json" wrk -t"$threads" -c"$conns" -d"${SECONDS_EACH}s" --timeout 10s -s tests/e2e/scaleout_load.lua "$url" \
    >"$OUT/wrk.txt"
  [ "$hp" != "-" ] && after_hp=$(cpu_ticks "$hp")
  for p in "$@"; do after_inf=$((after_inf + $(cpu_ticks "$p"))); done
  local reqs us ok p50 p99
  reqs=$(awk '/^REQUESTS/ {print $2}' "$OUT/wrk.txt")
  us=$(awk '/^REQUESTS/ {print $4}' "$OUT/wrk.txt")
  ok=$(awk '/^STATUS 200 / {print $3}' "$OUT/wrk.txt")
  p50=$(sed -n 's/^LATENCY_US p50=\([0-9]*\) .*/\1/p' "$OUT/wrk.txt")
  p99=$(sed -n 's/^LATENCY_US .*p99=\([0-9]*\)/\1/p' "$OUT/wrk.txt")
  awk -v l="$label" -v c="$conns" -v r="$reqs" -v us="$us" -v ok="${ok:-0}" -v p50="$p50" -v p99="$p99" \
    -v hp="$((after_hp - before_hp))" -v inf="$((after_inf - before_inf))" -v tick="$TICK" -v hasproxy="$hp" \
    'BEGIN {
       hpus = (hasproxy == "-") ? "-" : sprintf("%.1f", hp / tick * 1e6 / r);
       printf "| %s | %d | %.0f | %d | %.2f | %.2f | %s | %.1f |\n", l, c, r / (us / 1e6), r - ok, p50 / 1000, p99 / 1000, hpus, inf / tick * 1e6 / r
     }'
}

start_haproxy() { # start_haproxy N [noretry]: HAProxy in front of the first N replicas; sets HP_PID, HP_PORT
  local n=$1 variant=${2:-} servers=()
  for ((j = 0; j < n; j++)); do servers+=("127.0.0.1:${REPLICA_PORTS[$j]}"); done
  HP_PORT=$(free_port)
  # without the access log (a line per request is the operator's choice, not the proxy's cost)
  deploy/haproxy/render.sh --bind "127.0.0.1:$HP_PORT" "${servers[@]}" | grep -v '^    log \|option httplog' >"$OUT/haproxy.cfg"
  # noretry: only connection failures retried, what l7 retries (a copy of each request) cost
  [ "$variant" = noretry ] && sed -i 's/^    retry-on .*/    retry-on conn-failure/' "$OUT/haproxy.cfg"
  haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
  HP_PID=$!
  PIDS+=("$HP_PID")
  wait_up "http://127.0.0.1:$HP_PORT/v2/health/ready"
  sleep 1 # every server's first check passed (inter 500 ms, rise 2 only applies after a fall)
}

echo "inferd $("$INFERD" version | awk '{print $2}'), $(nproc) cores, churn, wrk -t2 (-t1 at one connection), ${SECONDS_EACH} s each"
echo
echo "| setup | connections | req/s | failed | p50 ms | p99 ms | HAProxy CPU µs/req | inferd CPU µs/req |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
URL_PATH=/v2/models/churn/infer
for conns in 1 "$CONNS"; do
  run "1 replica, direct" "http://127.0.0.1:${REPLICA_PORTS[0]}$URL_PATH" "$conns" - "${REPLICA_PIDS[0]}"
  for n in 1 2 3; do
    start_haproxy "$n"
    run "$n replica(s) behind HAProxy" "http://127.0.0.1:$HP_PORT$URL_PATH" "$conns" "$HP_PID" "${REPLICA_PIDS[@]:0:$n}"
    kill "$HP_PID"
    wait "$HP_PID" 2>/dev/null || true
  done
done
start_haproxy 1 noretry
run "1 replica behind HAProxy, retry-on conn-failure only" "http://127.0.0.1:$HP_PORT$URL_PATH" "$CONNS" "$HP_PID" "${REPLICA_PIDS[0]}"
