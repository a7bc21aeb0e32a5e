#!/usr/bin/env bash
# Instructions the server executes per V2 request of one model (callgrind, all threads, as
# bench/instructions_per_request.sh counts them): 50 warm-up requests, then 500 sequential
# ones on one keep-alive connection, the same body each time. On a model with response_cache
# every counted request is a hit; on the same model without it every one runs the model. With
# DISTINCT=1 each request's first input element differs (every one a miss when cached).
# Unlike latency, not disturbed by other load on the machine.
#   bench/cache_instructions.sh REPO MODEL TAG   (REPO: e.g. bench/out/cache_repo from
#   bench/run_cache.sh; prints instructions per request)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
REPO=$1 MODEL=$2 TAG=$3 BUILD=${BUILD:-build}
PY=/usr/bin/python3
mkdir -p bench/out
$PY bench/make_bodies.py bench/out
BASE=${MODEL%_cached}
port=$(free_port)
rm -f /tmp/cg."$TAG".*
valgrind --tool=callgrind --callgrind-out-file=/tmp/cg."$TAG".%p --instr-atstart=no --dump-instr=no \
  "$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$port" >/tmp/cg."$TAG".log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$port/v2/health/ready"
send() {
  $PY - "$port" "$1" "$MODEL" "$BASE" <<'PY'
import json, sys, requests
import os
port, n, model, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = json.load(open(f"bench/out/{base}.json"))
distinct = os.environ.get("DISTINCT") == "1"
s = requests.Session()
for i in range(n):
    if distinct:
        body["inputs"][0]["data"][0] = float(n * 1000 + i)
    s.post(f"http://127.0.0.1:{port}/v2/models/{model}/infer", json=body).raise_for_status()
PY
}
send 50
callgrind_control -i on $pid >/dev/null
send 500
callgrind_control -i off $pid >/dev/null
callgrind_control -d $pid >/dev/null
kill -TERM $pid
wait $pid || true
trap - EXIT
for f in /tmp/cg."$TAG".*[0-9]; do # the dump (.1) holds the counted requests; the final file is empty
  total=$(callgrind_annotate "$f" 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",", "", $1); print $1}' || true)
  case $total in ''|*[!0-9]*) continue ;; esac
  echo "$TAG $((total / 500)) instructions/request"
done
