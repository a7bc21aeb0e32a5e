#!/usr/bin/env bash
# Reloads under load (issue 10): latency while the live repository adds, replaces and removes
# versions of the model being served, against the steady state, in one server run.
# The mlp model (one row of 256 floats) is served from a temporary repository in poll mode
# (--repository-poll-secs 1, {"all": true} version policy) to 64 connections at full speed:
# 32 V2 JSON over HTTP keep-alive (wrk -c32) and 32 gRPC ModelInfer calls (build/grpc_bench,
# 32 concurrent calls), every request naming no version (so each one goes to the newest READY).
# Phases, DURATION seconds each, one after the other on the same server:
#   steady-1   no change on disk (the poller still rescans every second)
#   poll       reload cycles found by the poller: add version N+1 (the new default), replace its
#              model.onnx (a copy, renamed in: the version reloads side by side), remove version
#              N; each step waits until the server has acted on it (index / log) before the next
#   steady-2   no change
#   api        the same cycles back to back, each step followed by
#              POST /v2/repository/models/mlp/load (answers when done): the server is reloading
#              for most of the phase
# Reports per phase and protocol: requests/s, p50, p99, non-2xx; and p99 in each reload phase
# over the mean of the two steady phases' p99 (target: at most 1.5x).
#   bench/reload_under_load.sh        DURATION=15 BUILD=build CONNS=32 (per protocol)
# PLACEMENT=split (default): the server on core 1; wrk, grpc_bench and the reload driver on
# core 0 (taskset), so a version's load (ONNX Runtime session creation and warmup on the
# server's model-repo thread) competes with serving for the server's one core.
# PLACEMENT=shared: everything on every core.
# NICE_LOADS=1: an experiment, not a server setting: renice the server's model-repo threads to
# 19 after start (Linux nice is per thread), so a load yields the core to serving.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BUILD=${BUILD:-build}
DURATION=${DURATION:-15}
CONNS=${CONNS:-32}
PLACEMENT=${PLACEMENT:-split}
if [ "$PLACEMENT" = split ]; then SRV_CPUS=1; CLI_CPUS=0; else SRV_CPUS=0-$(($(nproc) - 1)); CLI_CPUS=$SRV_CPUS; fi
PY=/usr/bin/python3
OUT=bench/out/reload
mkdir -p "$OUT"
rm -f "$OUT"/*
$PY bench/make_bodies.py "$OUT" >/dev/null
TMP=$(mktemp -d)
REPO=$TMP/repo
mkdir -p "$REPO/mlp/1"
cp models/mlp/1/model.onnx "$REPO/mlp/1/model.onnx"
cp models/mlp/1/model.onnx "$TMP/model.onnx" # the source of every copy
$PY - "$REPO/mlp/config.json" <<'PY'
import json, sys
c = json.load(open("models/mlp/config.json"))
c["version_policy"] = {"all": True}
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY

HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
LOG=$OUT/server.log
taskset -c $SRV_CPUS "$BUILD/inferd" serve --model-repository "$REPO" --host 127.0.0.1 --http-port "$HTTP_PORT" \
  --grpc-port "$GRPC_PORT" --model-control-mode poll --repository-poll-secs 1 2>"$LOG" &
SERVER=$!
DRIVER=
cleanup() {
  [ -n "$DRIVER" ] && kill "$DRIVER" 2>/dev/null
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
wait_up "http://127.0.0.1:$HTTP_PORT/v2/health/ready"
if [ "${NICE_LOADS:-0}" = 1 ]; then
  for t in /proc/$SERVER/task/*; do
    [ "$(cat "$t/comm")" = model-repo ] && renice -n 19 -p "$(basename "$t")" >/dev/null
  done
fi
BASE=http://127.0.0.1:$HTTP_PORT

# --- the reload driver ------------------------------------------------------------------------
# state in $TMP/current (the newest version); cycles completed appended to $TMP/cycles-<phase>
unloaded() { grep -c ' unloaded' "$LOG" || true; }
state_of() { # version -> its state in the index, or "absent"
  curl -sf -X POST "$BASE/v2/repository/index" |
    $PY -c 'import json,sys; v=sys.argv[1]; print(next((e["state"] for e in json.load(sys.stdin) if e.get("version")==v), "absent"))' "$1"
}
wait_for() { # a shell condition, up to 30 s
  for _ in $(seq 600); do eval "$1" && return 0; sleep 0.05; done
  echo "reload driver: timed out waiting for: $1" >&2
  return 1
}
step_done() { # mode -> makes the server act on the change just made (api) ; the caller waits
  if [ "$1" = api ]; then
    code=$(curl -s -o "$TMP/load.txt" -w '%{http_code}' -X POST "$BASE/v2/repository/models/mlp/load")
    [ "$code" = 200 ] || { echo "load answered $code: $(cat "$TMP/load.txt")" >&2; return 1; }
  fi
  return 0
}
drive() { # mode phase: runs reload cycles until $TMP/stop exists
  local mode=$1 phase=$2 n u
  while [ ! -e "$TMP/stop" ]; do
    n=$(cat "$TMP/current")
    # add version n+1
    mkdir "$TMP/v$((n + 1))" && cp "$TMP/model.onnx" "$TMP/v$((n + 1))/" && mv "$TMP/v$((n + 1))" "$REPO/mlp/$((n + 1))"
    step_done "$mode"
    wait_for "[ \"\$(state_of $((n + 1)))\" = READY ]"
    # replace its file (a new inode: the version reloads side by side)
    u=$(unloaded)
    cp "$TMP/model.onnx" "$REPO/mlp/$((n + 1))/model.onnx.tmp" && mv "$REPO/mlp/$((n + 1))/model.onnx.tmp" "$REPO/mlp/$((n + 1))/model.onnx"
    step_done "$mode"
    wait_for "[ \"\$(unloaded)\" -gt $u ]"
    # remove version n
    u=$(unloaded)
    rm -rf "$REPO/mlp/$n"
    step_done "$mode"
    wait_for "[ \"\$(unloaded)\" -gt $u ] && [ \"\$(state_of $n)\" = absent ]"
    echo $((n + 1)) >"$TMP/current"
    echo "$(date +%s.%N)" >>"$TMP/cycles-$phase"
  done
}
echo 1 >"$TMP/current"

# --- phases -----------------------------------------------------------------------------------
phase() { # name mode(steady|poll|api)
  local name=$1 mode=$2
  : >"$TMP/cycles-$name"
  rm -f "$TMP/stop"
  if [ "$mode" != steady ]; then
    taskset -c $CLI_CPUS bash -c "$(declare -f unloaded state_of wait_for step_done drive); BASE=$BASE LOG=$LOG TMP=$TMP REPO=$REPO PY=$PY; drive $mode $name" \
      2>"$OUT/driver-$name.err" &
    DRIVER=$!
    sleep 0.2
  fi
  BODY="$OUT/mlp.json" taskset -c $CLI_CPUS wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/post_body.lua \
    "$BASE/v2/models/mlp/infer" >"$OUT/$name-http.txt" &
  local W=$!
  taskset -c $CLI_CPUS "$BUILD/grpc_bench" --target "127.0.0.1:$GRPC_PORT" --model mlp --concurrency "$CONNS" --threads 1 \
    --duration "$DURATION" --warmup 0 >"$OUT/$name-grpc.txt" 2>&1 || true
  wait "$W" || true
  if [ -n "$DRIVER" ]; then
    touch "$TMP/stop"
    wait "$DRIVER" || { echo "reload driver failed in $name:" >&2; cat "$OUT/driver-$name.err" >&2; }
    DRIVER=
  fi
}
# warm-up (not reported)
BODY="$OUT/mlp.json" taskset -c $CLI_CPUS wrk -t1 -c"$CONNS" -d2s -s bench/post_body.lua "$BASE/v2/models/mlp/infer" >/dev/null
phase steady-1 steady
phase poll poll
phase steady-2 steady
phase api api

# --- report -----------------------------------------------------------------------------------
echo "inferd $(git rev-parse --short HEAD) ($BUILD), mlp, $CONNS HTTP + $CONNS gRPC connections, ${DURATION} s per phase, placement $PLACEMENT (server on cores $SRV_CPUS, clients on $CLI_CPUS), NICE_LOADS=${NICE_LOADS:-0}"
$PY - "$OUT" "$TMP" <<'PY'
import json, os, re, sys
out, tmp = sys.argv[1], sys.argv[2]
def us(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
rows = {}
for ph in ("steady-1", "poll", "steady-2", "api"):
    h = open(f"{out}/{ph}-http.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", h).group(1))
    p50 = us(re.search(r"^\s+50%\s+(\S+)", h, re.M).group(1))
    p99 = us(re.search(r"^\s+99%\s+(\S+)", h, re.M).group(1))
    bad = re.search(r"BENCH non200=(\d+) errors=(\d+)", h)
    g = json.loads(open(f"{out}/{ph}-grpc.txt").read().strip().splitlines()[-1])
    cycles = sum(1 for _ in open(f"{tmp}/cycles-{ph}"))
    rows[ph] = dict(h=(rps, p50, p99, int(bad.group(1)) + int(bad.group(2))),
                    g=(g["rps"], g["p50_us"], g["p99_us"], g["errors"]), cycles=cycles)
print(f"{'phase':10} {'cycles':>6} | {'HTTP req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'non-2xx':>7} | "
      f"{'gRPC req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'errors':>6}")
for ph, r in rows.items():
    print(f"{ph:10} {r['cycles']:>6} | {r['h'][0]:>10.0f} {r['h'][1]:>8.0f} {r['h'][2]:>8.0f} {r['h'][3]:>7} | "
          f"{r['g'][0]:>10.0f} {r['g'][1]:>8.0f} {r['g'][2]:>8.0f} {r['g'][3]:>6}")
ok = True
for proto, k in (("HTTP", "h"), ("gRPC", "g")):
    steady = (rows["steady-1"][k][2] + rows["steady-2"][k][2]) / 2
    for ph in ("poll", "api"):
        ratio = rows[ph][k][2] / steady
        ok &= ratio <= 1.5
        print(f"{proto} p99 {ph} / steady: {ratio:.2f}x (steady p99 {steady:.0f} µs; target <= 1.5x)")
errors = sum(r[k][3] for r in rows.values() for k in ("h", "g"))
print(f"non-2xx / errors over all phases: {errors}")
print("PASS" if ok and errors == 0 and rows["poll"]["cycles"] and rows["api"]["cycles"] else "FAIL")
PY
