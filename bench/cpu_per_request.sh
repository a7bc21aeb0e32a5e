#!/usr/bin/env bash
# Where the CPU goes per request: serves REPO, runs one load command against it, and prints each
# server thread kind's user and system time (from /proc/<pid>/task, threads are named) and the
# load client's, divided by the requests the model's statistics counted.
#   bench/cpu_per_request.sh [-- load command]
# The load command may use $HTTP_PORT and $GRPC_PORT (exported). Default: wrk, 2 threads, 64
# connections, 10 s, the mlp V2 JSON body.
# Environment: BUILD (default build), REPO (default models), MODEL (default mlp); API_KEY (sent
# with the statistics request, for a server with --api-keys / INFERD_API_KEYS).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
REPO=${REPO:-models}
MODEL=${MODEL:-mlp}
PY=/usr/bin/python3
OUT=bench/out
mkdir -p "$OUT"
$PY bench/make_bodies.py "$OUT"
[ "${1:-}" = "--" ] && shift
export HTTP_PORT GRPC_PORT
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
if [ $# -eq 0 ]; then
  set -- env BODY="$OUT/$MODEL.json" wrk -t2 -c64 -d10s -s bench/post_body.lua "http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL/infer"
fi
"$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" \
  >"$OUT/cpu-server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$HTTP_PORT/v2/health/ready"
count() { curl -sf ${API_KEY:+-H "X-API-Key: $API_KEY"} "http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin)["model_stats"][0]["inference_stats"]["success"]["count"])'; }
# "name utime stime" summed by thread name, in clock ticks
threads() {
  for t in /proc/"$SERVER"/task/*; do
    echo "$(cat "$t/comm" | tr ' ' _) $(awk '{print $14, $15}' "$t/stat")"
  done | awk '{u[$1] += $2; s[$1] += $3} END {for (k in u) print k, u[k], s[k]}' | sort
}
n0=$(count)
threads >"$OUT/cpu-before.txt"
/usr/bin/time -f "%U %S" -o "$OUT/cpu-client.txt" "$@" >"$OUT/cpu-load.txt" 2>&1
threads >"$OUT/cpu-after.txt"
n=$(($(count) - n0))
HZ=$(getconf CLK_TCK)
echo "requests counted: $n"
printf "%-18s %10s %10s\n" thread "user_us" "system_us"
join "$OUT/cpu-before.txt" "$OUT/cpu-after.txt" | awk -v n="$n" -v hz="$HZ" '
  { du = ($4 - $2) / hz * 1e6 / n; ds = ($5 - $3) / hz * 1e6 / n
    if (du + ds > 0.05) printf "%-18s %10.1f %10.1f\n", $1, du, ds }'
read -r cu cs <"$OUT/cpu-client.txt"
awk -v n="$n" -v u="$cu" -v s="$cs" 'BEGIN { printf "%-18s %10.1f %10.1f\n", "load client", u * 1e6 / n, s * 1e6 / n }'
