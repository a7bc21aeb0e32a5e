#!/usr/bin/env bash
# Instructions the server executes per V2 churn request, counted by valgrind's callgrind (this
# machine has no hardware counters for perf): instrumentation is switched on after 50 warm-up
# requests, for 500 sequential requests over one keep-alive connection, then the counts are
# dumped. All the server's threads, ONNX Runtime's Run included. Not disturbed by other load on
# the machine, unlike CPU time; two runs of one build still differ by up to ~0.5 % (event-loop
# wake-ups and thread-pool spinning depend on timing).
#   bench/instructions_per_request.sh BUILD TAG   (prints "N (100.0%) PROGRAM TOTALS"; / 500)
# Environment: REPO (default models), SERVE_ARGS (or SERVER_ARGS) (more `inferd serve` options, e.g.
# "--api-keys keys.json" or capture), API_KEY (sent as X-API-Key on every request).
# With POLICY=FILE, churn gets that traffic policy (docs/traffic.md) first, in a scratch state
# directory, and each request sends its own X-User-Id (a sticky key).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=$1 TAG=$2
PY=/usr/bin/python3
mkdir -p bench/out
$PY bench/make_bodies.py bench/out
port=$(free_port)
rm -rf /tmp/cg."$TAG".*
valgrind --tool=callgrind --callgrind-out-file=/tmp/cg."$TAG".%p --instr-atstart=no --dump-instr=no \
  "$BUILD/inferd" serve --model-repository "${REPO:-models}" --host 127.0.0.1 --http-port "$port" \
  --grpc-port "$(free_port)" --state-dir "/tmp/cg.$TAG.state" ${SERVE_ARGS:-} ${SERVER_ARGS:-} \
  >/tmp/cg."$TAG".log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$port/v2/health/ready"
if [ -n "${POLICY:-}" ]; then
  curl -sf -X PUT -H 'Content-Type: application/json' --data-binary @"$POLICY" \
    "http://127.0.0.1:$port/v1/models/churn/traffic" >/dev/null
fi
send() {
  $PY - "$port" "$1" <<'PY'
import json, os, sys, requests
port, n = sys.argv[1], int(sys.argv[2])
body = json.load(open("bench/out/churn.json"))
s = requests.Session()
if os.environ.get("API_KEY"):
    s.headers["X-API-Key"] = os.environ["API_KEY"]
for i in range(n):
    s.post(f"http://127.0.0.1:{port}/v2/models/churn/infer", json=body,
           headers={"X-User-Id": f"user-{i}"}).raise_for_status()
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
for f in /tmp/cg."$TAG".*[0-9]; do callgrind_annotate "$f" 2>/dev/null | grep -m1 "PROGRAM TOTALS"; done
